//! The login QR code as a person sees it: half-block characters for the terminal, and a PNG for
//! `wechat.qr_png`, the QR topic and the status page.
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

/// The QR code drawn with half-block characters, two modules per character cell, with its
/// quiet zone. Colours are inverted (light modules drawn) so it scans on dark terminals.
pub fn terminal(content: &str) -> String {
    match QrCode::new(content.as_bytes()) {
        Ok(code) => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(cannot draw the QR code: {e})"),
    }
}

/// The QR code as PNG bytes, 8 pixels per module.
pub fn png(content: &str) -> Result<Vec<u8>, String> {
    let code = QrCode::new(content.as_bytes()).map_err(|e| e.to_string())?;
    let img = code
        .render::<image::Luma<u8>>()
        .module_dimensions(8, 8)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_decodes_as_an_image() {
        let bytes = png("https://login.weixin.qq.com/l/Xk3pQ9wZbA==").unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&bytes).unwrap();
        assert!(img.width() > 100 && img.width() == img.height());
    }

    #[test]
    fn terminal_rendering_uses_half_blocks() {
        let s = terminal("https://login.weixin.qq.com/l/Xk3pQ9wZbA==");
        assert!(s.contains('▀') || s.contains('▄'));
        let lines: Vec<_> = s.lines().collect();
        assert!(lines.len() < 30, "fits a terminal: {} lines", lines.len());
    }
}
