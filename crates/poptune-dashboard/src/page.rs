//! The page: one HTML file with its style and scripts inlined (the same for the live server
//! and the static file), and for a static file, its data.

use serde_json::Value;

const HTML: &str = include_str!("../assets/index.html");
const STYLE: &str = include_str!("../assets/style.css");
/// The scripts, in the order they run.
const SCRIPTS: [&str; 6] = [
    include_str!("../assets/util.js"),
    include_str!("../assets/scores.js"),
    include_str!("../assets/schedules.js"),
    include_str!("../assets/tree.js"),
    include_str!("../assets/tables.js"),
    include_str!("../assets/app.js"),
];

/// JSON that is safe inside a `<script>` element: no `<`, `>` or `&` (each only ever in a
/// string, where its `\u` escape means the same).
fn script_safe(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The page; `data` embedded makes it a static page that reads no server.
pub(crate) fn html(data: Option<&Value>) -> String {
    let data = data.map_or_else(|| "null".to_string(), script_safe);
    HTML.replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", &SCRIPTS.join("\n"))
        .replace("/*DATA*/", &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_data_cannot_end_the_script() {
        let v = serde_json::json!({ "stderr": "</script><script>alert(1)</script> & more" });
        let page = html(Some(&v));
        assert!(!page.contains("</script><script>alert"));
        let start = page.find("id=\"poptune-data\"").unwrap();
        let body = &page[start..];
        let json_start = body.find('>').unwrap() + 1;
        let json_end = body.find("</script>").unwrap();
        let back: Value = serde_json::from_str(&body[json_start..json_end]).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn the_page_fetches_nothing_from_elsewhere() {
        let page = html(None);
        for bad in ["http://", "https://", "//cdn", "<link", "src=\""] {
            assert!(!page.contains(bad), "{bad}");
        }
    }
}
