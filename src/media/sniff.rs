//! What a stored file is, from its bytes, never from a name: the MIME type from its magic
//! number (the `infer` crate), and width and height for images (`imagesize`, which reads only
//! the headers it needs).
use std::io::Read;
use std::path::Path;

/// How many leading bytes the type is decided from.
pub(super) const HEAD_BYTES: usize = 8 * 1024;

/// The type of bytes nothing recognizes.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// The type of bytes that read as text.
pub const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// A file's type and, for images, its size in pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Sniffed {
    pub(super) mime: String,
    pub(super) width: Option<u32>,
    pub(super) height: Option<u32>,
}

/// The type of the file at `path` whose first bytes are `head`.
pub(super) fn sniff(head: &[u8], path: &Path) -> Sniffed {
    let mime = mime_of(head);
    let (width, height) = if mime.starts_with("image/") {
        // The headers usually sit in `head`; a JPEG with a large EXIF block needs the file.
        match imagesize::blob_size(head).or_else(|_| imagesize::size(path)) {
            Ok(size) => (
                u32::try_from(size.width).ok(),
                u32::try_from(size.height).ok(),
            ),
            Err(_) => (None, None),
        }
    } else {
        (None, None)
    };
    Sniffed {
        mime,
        width,
        height,
    }
}

/// [`sniff`] for a file whose head is not at hand (found in the store at open). A file that
/// cannot be read is `application/octet-stream`.
pub(super) fn sniff_file(path: &Path) -> Sniffed {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    let read = std::fs::File::open(path)
        .and_then(|file| file.take(HEAD_BYTES as u64).read_to_end(&mut head));
    match read {
        Ok(_) => sniff(&head, path),
        Err(_) => Sniffed {
            mime: OCTET_STREAM.to_owned(),
            width: None,
            height: None,
        },
    }
}

/// The MIME type of bytes starting with `head`.
pub fn mime_of(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if looks_like_text(head) {
        return PLAIN_TEXT.to_owned();
    }
    OCTET_STREAM.to_owned()
}

/// UTF-8 without control characters other than whitespace; `head` may end inside a character.
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // Cut in the middle of a character at the end of the head: judge what came before.
        Err(e) if e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A PNG of `width` × `height` pixels.
    pub(in crate::media) fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        image::GrayImage::new(width, height)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(mime_of(&png(3, 2)), "image/png");
        assert_eq!(mime_of(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(mime_of(b"ID3\x04\0\0\0\0\0\0"), "audio/mpeg");
        assert_eq!(mime_of("grüße\nfrom the bridge".as_bytes()), PLAIN_TEXT);
        assert_eq!(mime_of(b"\0\x01\x02binary"), OCTET_STREAM);
        assert_eq!(mime_of(b""), OCTET_STREAM);
    }

    #[test]
    fn text_cut_inside_a_character_is_still_text() {
        let text = "ü".repeat(10);
        assert_eq!(mime_of(&text.as_bytes()[..5]), PLAIN_TEXT);
    }

    #[test]
    fn images_report_their_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, png(3, 2)).unwrap();
        let sniffed = sniff_file(&path);
        assert_eq!(sniffed.mime, "image/png");
        assert_eq!((sniffed.width, sniffed.height), (Some(3), Some(2)));
    }
}
