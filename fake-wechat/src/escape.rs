//! The server's text escaping (PROTOCOL.md §8.4, §8.5): entities, `<br/>` line breaks and
//! emoji spans in Content and names, and plain XML escaping for the payloads inside Content.

/// Text as the server puts it into Content and names: `& < > "` as entities, `\n` as
/// `<br/>`, emoji as `<span class="emoji emoji…"></span>` (§8.4, §8.5). Regional-indicator
/// pairs (flags) and keycaps become one span with both code points, as the web client sends
/// them; U+FE0F is dropped; U+2005 (the mention separator) is kept.
pub fn wx_escape(text: &str) -> String {
    escape(text, true)
}

/// An emoji span for a lowercase hex code (`"1f604"`, or `"1f1e81f1f3"` for a flag).
pub fn emoji_span(code: &str) -> String {
    format!("<span class=\"emoji emoji{code}\"></span>")
}

/// XML payloads are escaped the same way but keep any characters as they are.
pub(crate) fn wx_escape_xml(xml: &str) -> String {
    escape(xml, false)
}

fn escape(text: &str, emoji: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("<br/>"),
            '\u{FE0F}' if emoji => {}
            _ if emoji && is_regional(c) && next.is_some_and(is_regional) => {
                let pair = format!("{:x}{:x}", u32::from(c), u32::from(chars[i + 1]));
                out.push_str(&emoji_span(&pair));
                i += 1;
            }
            '#' | '*' | '0'..='9' if emoji && keycap_follows(&chars[i + 1..]) => {
                out.push_str(&emoji_span(&format!("{:x}20e3", u32::from(c))));
                i += chars[i + 1..]
                    .iter()
                    .position(|&k| k == '\u{20E3}')
                    .unwrap_or(0)
                    + 1;
            }
            _ if emoji && is_emoji(c) => out.push_str(&emoji_span(&format!("{:x}", u32::from(c)))),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

fn is_regional(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn keycap_follows(rest: &[char]) -> bool {
    matches!(rest, ['\u{20E3}', ..] | ['\u{FE0F}', '\u{20E3}', ..])
}

fn is_emoji(c: char) -> bool {
    ('\u{1F000}'..='\u{1FAFF}').contains(&c) || ('\u{2600}'..='\u{27BF}').contains(&c)
}

/// Escaping for text placed inside an XML element.
pub(crate) fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escaping for text placed inside a double-quoted XML attribute.
pub(crate) fn xml_attr(s: &str) -> String {
    xml_text(s).replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_the_server() {
        assert_eq!(
            wx_escape("a<b> & \"c\"\nd 😄"),
            "a&lt;b&gt; &amp; &quot;c&quot;<br/>d <span class=\"emoji emoji1f604\"></span>"
        );
        assert_eq!(wx_escape("🇨🇳"), emoji_span("1f1e81f1f3"));
        assert_eq!(wx_escape("#\u{FE0F}\u{20E3}"), emoji_span("2320e3"));
        assert_eq!(wx_escape("@Bob\u{2005}hi"), "@Bob\u{2005}hi");
    }
}
