//! A strict `multipart/form-data` reader for `webwxuploadmedia` (PROTOCOL.md §9.2): the
//! parts in the order they came, each with its name, file name, type and bytes, so the
//! upload can check the official client's field order.

/// One part of a form.
pub(crate) struct Part<'a> {
    pub name: String,
    /// The `filename` of a file part.
    pub filename: Option<String>,
    pub data: &'a [u8],
}

/// The boundary of a `multipart/form-data` Content-Type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';').map(str::trim);
    if !params.next()?.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// A `key="value"` parameter of a Content-Disposition.
fn disposition_param(line: &str, key: &str) -> Option<String> {
    line.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The parts of `body`, or what is malformed about it.
pub(crate) fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delim = format!("--{boundary}").into_bytes();
    let next_delim = format!("\r\n--{boundary}").into_bytes();
    if !body.starts_with(&delim) {
        return Err("the body does not start with the boundary".into());
    }
    let mut parts = Vec::new();
    let mut at = delim.len();
    loop {
        match body.get(at..at + 2) {
            Some(b"--") => return Ok(parts),
            Some(b"\r\n") => at += 2,
            _ => return Err("a boundary is not followed by CRLF or --".into()),
        }
        let head_end = find(body, b"\r\n\r\n", at).ok_or("a part has no header end")?;
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let data_start = head_end + 4;
        let data_end = find(body, &next_delim, data_start).ok_or("a part is not closed")?;
        let disposition = head
            .lines()
            .find(|l| {
                l.to_ascii_lowercase()
                    .starts_with("content-disposition: form-data")
            })
            .ok_or("a part has no Content-Disposition: form-data")?;
        let name = disposition_param(disposition, "name").ok_or("a part has no name")?;
        parts.push(Part {
            name,
            filename: disposition_param(disposition, "filename"),
            data: &body[data_start..data_end],
        });
        at = data_end + next_delim.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_reads_back_in_order_with_its_file_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nWU_FILE_0\r\n--XyZ\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"a b.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xFF\xD8\r\n--\r\n--XyZ--\r\n";
        let b = boundary("multipart/form-data; boundary=XyZ").unwrap();
        let parts = parse(body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].name.as_str(), parts[0].data),
            ("id", &b"WU_FILE_0"[..])
        );
        assert_eq!(parts[1].filename.as_deref(), Some("a b.jpg"));
        assert_eq!(parts[1].data, b"\xFF\xD8\r\n--");
        assert!(boundary("application/json").is_none());
        assert!(parse(b"garbage", "XyZ").is_err());
        assert!(parse(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
            "XyZ"
        )
        .is_err());
    }
}
