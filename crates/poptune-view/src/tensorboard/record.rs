//! The bytes of a TensorBoard event file: TFRecord framing with masked CRC-32C checksums,
//! and the few protobuf fields of `tensorflow.Event` and `tensorflow.Summary` that scalars
//! need, encoded by hand.
//!
//! A record is its length (u64, little-endian), the masked CRC-32C of those eight bytes, the
//! data, and the masked CRC-32C of the data. The data is one `Event`: `wall_time` (field 1,
//! double), `step` (2, int64), `file_version` (3, string; the first event of a file) and
//! `summary` (5), a `Summary` whose repeated `value` (1) each hold a `tag` (1, string) and a
//! `simple_value` (2, float).

/// The CRC-32C (Castagnoli) table, for the reflected polynomial 0x82F63B78.
const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// The CRC-32C of `data`.
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The masked CRC-32C TFRecord files carry (rotated, plus a constant).
pub(crate) fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends `data` to `out` as one TFRecord.
pub(crate) fn frame(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A field's key: its number and wire type (0 varint, 1 64-bit, 2 bytes, 5 32-bit).
fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// An `Event` with its wall time and step, and `file_version` or `summary` when given.
fn event(wall_time: f64, step: u64, version: Option<&str>, summary: Option<&[u8]>) -> Vec<u8> {
    let mut e = Vec::with_capacity(16 + summary.map_or(0, <[u8]>::len));
    key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        key(&mut e, 2, 0);
        // An int64: a step past i64::MAX (never seen) is written as its two's complement.
        varint(&mut e, step);
    }
    if let Some(v) = version {
        bytes_field(&mut e, 3, v.as_bytes());
    }
    if let Some(s) = summary {
        bytes_field(&mut e, 5, s);
    }
    e
}

/// The file's first record: the event that gives its format version.
pub(crate) fn version_record(out: &mut Vec<u8>, wall_time: f64) {
    frame(out, &event(wall_time, 0, Some("brain.Event:2"), None));
}

/// Appends one record: the scalars `values` (tag, value) at `step`.
pub(crate) fn scalars_record(
    out: &mut Vec<u8>,
    wall_time: f64,
    step: u64,
    values: &[(String, f32)],
) {
    let mut summary = Vec::with_capacity(values.len() * 24);
    let mut value = Vec::new();
    for (tag, v) in values {
        value.clear();
        bytes_field(&mut value, 1, tag.as_bytes());
        key(&mut value, 2, 5);
        value.extend_from_slice(&v.to_le_bytes());
        bytes_field(&mut summary, 1, &value);
    }
    frame(out, &event(wall_time, step, None, Some(&summary)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_gives_the_known_check_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720, B.4: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn the_mask_is_tensorflows() {
        // TensorFlow's crc32c::Mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
        let c = crc32c(b"123456789");
        let want = ((u64::from(c) >> 15) | ((u64::from(c) << 17) & 0xffff_ffff)) as u32;
        assert_eq!(masked_crc(b"123456789"), want.wrapping_add(0xa282_ead8));
        assert_eq!(masked_crc(b""), 0xa282_ead8);
    }

    #[test]
    fn a_record_is_length_checksum_data_checksum() {
        let mut out = Vec::new();
        frame(&mut out, b"hello");
        assert_eq!(out.len(), 8 + 4 + 5 + 4);
        assert_eq!(&out[..8], &5u64.to_le_bytes());
        assert_eq!(&out[8..12], &masked_crc(&5u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&out[12..17], b"hello");
        assert_eq!(&out[17..], &masked_crc(b"hello").to_le_bytes());
    }

    #[test]
    fn events_are_encoded_field_by_field() {
        let mut out = Vec::new();
        version_record(&mut out, 1.5);
        let data = &out[12..out.len() - 4];
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.push(0x1a);
        want.push(13);
        want.extend_from_slice(b"brain.Event:2");
        assert_eq!(data, &want[..]);

        let mut out = Vec::new();
        scalars_record(&mut out, 2.0, 300, &[("a".to_string(), 0.5)]);
        let data = &out[12..out.len() - 4];
        let mut want = vec![0x09];
        want.extend_from_slice(&2.0f64.to_le_bytes());
        // step = 300: key 0x10, varint 0xac 0x02.
        want.extend_from_slice(&[0x10, 0xac, 0x02]);
        // summary (field 5): one value (field 1) of tag "a" and simple_value 0.5.
        want.extend_from_slice(&[0x2a, 10, 0x0a, 8, 0x0a, 1, b'a', 0x15]);
        want.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(data, &want[..]);
    }
}
