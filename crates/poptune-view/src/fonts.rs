//! The font the bitmap (PNG) figures use, embedded so that no system font library is needed
//! (see `assets/README.md`); SVG figures name "sans-serif" and leave the font to the viewer.

use std::sync::Once;

use plotters::style::{register_font, FontStyle};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Makes "sans-serif" available to the bitmap backend, once.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is embedded and known to be valid; a failure would only lose the text.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
        let _ = register_font("sans-serif", FontStyle::Bold, FONT);
    });
}
