//! Raw RFC 5322 bytes → [`ParsedMail`], the owned view of an inbound message that matching and
//! classifying read.
//!
//! This module owns decoding: MIME structure, transfer encodings, charsets (GBK, GB2312,
//! GB18030, Big5, … through `mail-parser` with `full_encoding`), RFC 2047 headers, and turning
//! HTML into text when there is no plain part. It never fails: a message it cannot read becomes a
//! `ParsedMail` with empty fields and a note in `problems`, because the raw bytes are kept by the
//! store for review anyway.
//!
//! It must stay pure: no I/O, no SQL, no network, no clock. It must not decide anything about
//! probes (that is `matching`) or about the kind of response (that is `classify`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};
use serde::{Deserialize, Serialize};

use crate::model::Millis;

/// Most readable body text kept, in bytes; bounds the work of classifying a huge message.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Largest HTML part converted to text. The conversion costs more than the text it yields, and
/// a reply's readable part is at its start, so a longer part is cut (at a char boundary) first.
const MAX_HTML_BYTES: usize = 4 * MAX_TEXT_BYTES;

/// Headers whose addresses are where the message was delivered (for plus-address matching).
const RECIPIENT_HEADERS: &[&str] = &["to", "cc", "delivered-to", "x-original-to", "envelope-to"];

/// An inbound message, decoded and owned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedMail {
    /// `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// Ids in `In-Reply-To`, without angle brackets, in header order.
    pub in_reply_to: Vec<String>,
    /// Ids in `References`, without angle brackets, oldest first as written.
    pub references: Vec<String>,
    /// The first `From` address, lowercased.
    pub from: Option<String>,
    /// The display name of that `From` address.
    pub from_name: Option<String>,
    /// Lowercased addresses from `To`, `Cc`, `Delivered-To`, `X-Original-To` and `Envelope-To`,
    /// deduplicated, in header order.
    pub recipients: Vec<String>,
    /// The decoded subject, empty when there is none.
    pub subject: String,
    /// The `Date` header as UTC milliseconds, when present and valid.
    pub date: Option<Millis>,
    /// Each `Received` header, unfolded, top (newest hop) first.
    pub received: Vec<String>,
    /// The readable body: plain parts decoded to UTF-8, or HTML turned into text when there is
    /// no plain part; at most [`MAX_TEXT_BYTES`].
    pub text: String,
    /// Every top-level header as (lowercased name, RFC 2047-decoded unfolded value), in order.
    pub headers: Vec<(String, String)>,
    /// The message is a delivery status notification (`multipart/report;
    /// report-type=delivery-status`, or it has a `message/delivery-status` part).
    pub is_dsn: bool,
    /// What could not be read cleanly, for the reviewer; empty for a well-formed message.
    pub problems: Vec<String>,
}

impl ParsedMail {
    /// Values of every header called `name` (case-insensitive), in message order.
    pub fn header<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a raw message. Never fails and never panics: what cannot be read is noted in
/// `problems`.
pub fn parse(raw: &[u8]) -> ParsedMail {
    // `mail-parser` promises not to panic, but it is third-party code fed hostile bytes; a panic
    // there must cost one message, not the daemon.
    let mut mail = match catch_unwind(AssertUnwindSafe(|| parse_inner(raw))) {
        Ok(mail) => mail,
        Err(_) => ParsedMail {
            problems: vec!["the MIME parser failed on this message; only raw bytes kept".into()],
            ..ParsedMail::default()
        },
    };
    if mail.from.is_none()
        && mail.subject.is_empty()
        && mail.text.trim().is_empty()
        && !raw.is_empty()
    {
        // Nothing readable as a message: keep the bytes readable as text so a probe token in
        // them can still tie the message to its probe.
        let cut = &raw[..raw.len().min(MAX_TEXT_BYTES)];
        mail.text = String::from_utf8_lossy(cut).replace('\0', "");
        mail.problems
            .push("no header could be read; the raw bytes were read as text".into());
    }
    mail
}

fn parse_inner(raw: &[u8]) -> ParsedMail {
    let mut mail = ParsedMail::default();
    let Some(msg) = MessageParser::default().parse(raw) else {
        mail.problems
            .push("no RFC 5322 header found; not a readable message".into());
        return mail;
    };
    let Some(root) = msg.parts.first() else {
        mail.problems.push("no message part found".into());
        return mail;
    };

    mail.message_id = msg.message_id().and_then(clean_id);
    mail.in_reply_to = ids(msg.header(HeaderName::InReplyTo));
    mail.references = ids(msg.header(HeaderName::References));
    if let Some(addr) = msg.from().and_then(|a| a.first()) {
        mail.from = addr.address().map(str::to_lowercase);
        mail.from_name = addr
            .name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
    }
    mail.subject = msg.subject().unwrap_or_default().trim().to_owned();
    mail.date = msg
        .date()
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp().saturating_mul(1000));

    for header in &root.headers {
        let name = header.name.as_str().to_ascii_lowercase();
        let bytes = raw
            .get(header.offset_start as usize..header.offset_end as usize)
            .unwrap_or_default();
        if name == "received" {
            mail.received.push(unfold(bytes));
        }
        if RECIPIENT_HEADERS.contains(&name.as_str()) {
            let parsed = match &header.value {
                HeaderValue::Address(_) => header.value.clone(),
                _ => MessageStream::new(bytes).parse_address(),
            };
            if let HeaderValue::Address(addr) = parsed {
                push_addresses(&mut mail.recipients, &addr);
            }
        }
        let value = match MessageStream::new(bytes).parse_unstructured() {
            HeaderValue::Text(t) => t.trim().to_owned(),
            _ => String::new(),
        };
        mail.headers.push((name, value));
    }

    mail.is_dsn = is_dsn(&msg);
    mail.text = body_text(&msg, &mut mail.problems);
    note_part_problems(&msg, &mut mail.problems);
    mail
}

/// An id without its angle brackets and surrounding space, or `None` when nothing is left.
fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_owned())
}

fn ids(value: Option<&HeaderValue<'_>>) -> Vec<String> {
    match value {
        Some(HeaderValue::Text(t)) => clean_id(t).into_iter().collect(),
        Some(HeaderValue::TextList(list)) => list.iter().filter_map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    }
}

/// A header's raw value on one line: folds removed, runs of white space made one space.
fn unfold(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn push_addresses(out: &mut Vec<String>, addr: &Address<'_>) {
    for a in addr.iter() {
        if let Some(address) = a.address() {
            let address = address.trim().to_lowercase();
            if !address.is_empty() && !out.contains(&address) {
                out.push(address);
            }
        }
    }
}

fn content_type_is(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case(ctype)
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

fn is_dsn(msg: &Message<'_>) -> bool {
    let report = msg.parts.first().is_some_and(|root| {
        content_type_is(root, "multipart", "report")
            && root
                .content_type()
                .and_then(|ct| ct.attribute("report-type"))
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("delivery-status"))
    });
    report
        || msg.parts.iter().any(|p| {
            content_type_is(p, "message", "delivery-status")
                || content_type_is(p, "message", "global-delivery-status")
        })
}

/// The readable text: every body part `mail-parser` chose as text (plain, or HTML when a
/// branch has no plain alternative), joined by blank lines and capped.
fn body_text(msg: &Message<'_>, problems: &mut Vec<String>) -> String {
    let mut text = String::new();
    let mut truncated = false;
    for &id in &msg.text_body {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        let piece = match &part.body {
            PartType::Text(t) => t.as_ref().to_owned(),
            PartType::Html(h) => {
                let h = cut(h, MAX_HTML_BYTES);
                truncated |= h.len() < part.body.len();
                html_to_text(h)
            }
            _ => continue,
        };
        let piece = piece.replace('\0', "");
        if piece.trim().is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        let room = MAX_TEXT_BYTES.saturating_sub(text.len());
        let kept = cut(&piece, room);
        truncated |= kept.len() < piece.len();
        text.push_str(kept);
        if text.len() >= MAX_TEXT_BYTES {
            break;
        }
    }
    if text.trim().is_empty() {
        // A broken multipart (its boundary never appears) leaves the body as an "other text"
        // part that is not chosen as body; its text is still the best there is.
        let fallback = msg.parts.iter().find_map(|p| match &p.body {
            PartType::Text(t) if !t.trim().is_empty() && !is_attachment(p) => Some(t),
            _ => None,
        });
        if let Some(t) = fallback {
            let t = t.replace('\0', "");
            let kept = cut(&t, MAX_TEXT_BYTES);
            truncated |= kept.len() < t.len();
            text = kept.to_owned();
        }
    }
    if truncated {
        problems.push(format!("body text cut at {MAX_TEXT_BYTES} bytes"));
    }
    text
}

fn is_attachment(part: &MessagePart<'_>) -> bool {
    part.content_disposition()
        .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn note_part_problems(msg: &Message<'_>, problems: &mut Vec<String>) {
    if let Some(root) = msg.parts.first()
        && root
            .content_type()
            .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
        && !matches!(root.body, PartType::Multipart(_))
    {
        problems.push("multipart boundary missing or never found; body read as one part".into());
    }
    for (i, part) in msg.parts.iter().enumerate() {
        if part.is_encoding_problem {
            problems.push(format!(
                "part {i}: broken MIME structure or transfer encoding; read as raw text"
            ));
        }
        let charset = part
            .content_type()
            .filter(|ct| ct.ctype().eq_ignore_ascii_case("text"))
            .and_then(|ct| ct.attribute("charset"));
        if let Some(charset) = charset {
            let c = charset.trim();
            let is_utf8 = c.eq_ignore_ascii_case("utf-8") || c.eq_ignore_ascii_case("utf8");
            if !is_utf8 && charset_decoder(c.as_bytes()).is_none() {
                problems.push(format!(
                    "part {i}: unknown charset `{}`; decoded as UTF-8 with replacements",
                    c.chars().take(64).collect::<String>()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn plain_message_fields() {
        let raw = crlf(
            "Received: from mx.example.com (mx.example.com [192.0.2.1])\n\
             \tby mail.example.org with ESMTPS id 123\n\
             \tfor <shopper@example.org>; Mon, 2 Nov 2026 03:00:05 +0000\n\
             Received: from a by b\n\
             From: \"Support Team\" <Support@Exchange.Example>\n\
             To: Shopper <Shopper+dp0123456789@Example.org>, other@example.org\n\
             Cc: cc@example.org\n\
             Delivered-To: shopper+dp0123456789@example.org\n\
             X-Original-To: orig@example.org\n\
             Envelope-To: env@example.org\n\
             Subject: Re: Withdrawal still pending\n\
             Date: Mon, 2 Nov 2026 11:00:00 +0800\n\
             Message-ID: <reply.1@exchange.example>\n\
             In-Reply-To: <p1.dp0123456789@example.org>\n\
             References: <a@x> <p1.dp0123456789@example.org>\n\
             X-Custom: hello\n\
             \n\
             Hello there\n",
        );
        let m = parse(&raw);
        assert_eq!(m.message_id.as_deref(), Some("reply.1@exchange.example"));
        assert_eq!(m.in_reply_to, vec!["p1.dp0123456789@example.org"]);
        assert_eq!(m.references, vec!["a@x", "p1.dp0123456789@example.org"]);
        assert_eq!(m.from.as_deref(), Some("support@exchange.example"));
        assert_eq!(m.from_name.as_deref(), Some("Support Team"));
        assert_eq!(
            m.recipients,
            vec![
                "shopper+dp0123456789@example.org",
                "other@example.org",
                "cc@example.org",
                "orig@example.org",
                "env@example.org",
            ]
        );
        assert_eq!(m.subject, "Re: Withdrawal still pending");
        assert_eq!(m.date, Some(1_793_588_400_000));
        assert_eq!(
            m.received,
            vec![
                "from mx.example.com (mx.example.com [192.0.2.1]) by mail.example.org with \
                 ESMTPS id 123 for <shopper@example.org>; Mon, 2 Nov 2026 03:00:05 +0000",
                "from a by b",
            ]
        );
        assert_eq!(m.text.trim(), "Hello there");
        assert_eq!(m.header("X-CUSTOM").collect::<Vec<_>>(), vec!["hello"]);
        assert_eq!(m.header("received").count(), 2);
        assert!(!m.is_dsn);
        assert!(m.problems.is_empty(), "{:?}", m.problems);
    }

    #[test]
    fn gbk_body() {
        let mut raw = crlf(
            "From: a@b.cn\nSubject: hi\nContent-Type: text/plain; charset=gbk\n\
             Content-Transfer-Encoding: 8bit\n\n",
        );
        raw.extend_from_slice(&[0xC4, 0xE3, 0xBA, 0xC3, b'\r', b'\n']);
        let m = parse(&raw);
        assert_eq!(m.text.trim(), "你好");
        assert!(m.problems.is_empty(), "{:?}", m.problems);
    }

    #[test]
    fn big5_body() {
        // 你好 in Big5.
        let mut raw = crlf("From: a@b.tw\nSubject: hi\nContent-Type: text/plain; charset=Big5\n\n");
        raw.extend_from_slice(&[0xA7, 0x41, 0xA6, 0x6E]);
        let m = parse(&raw);
        assert_eq!(m.text.trim(), "你好");
    }

    #[test]
    fn quoted_printable_utf8() {
        let raw = crlf(
            "From: a@b\nSubject: qp\nContent-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: quoted-printable\n\n\
             Caf=C3=A9 =E4=BD=A0=E5=A5=BD, a soft=\n break\n",
        );
        let m = parse(&raw);
        assert_eq!(m.text.trim(), "Café 你好, a soft break");
    }

    #[test]
    fn base64_body() {
        // "Hello, 世界" in UTF-8, base64.
        let raw = crlf(
            "From: a@b\nSubject: b64\nContent-Type: text/plain; charset=UTF-8\n\
             Content-Transfer-Encoding: base64\n\nSGVsbG8sIOS4lueVjA==\n",
        );
        assert_eq!(parse(&raw).text.trim(), "Hello, 世界");
    }

    #[test]
    fn rfc2047_subject_gb2312() {
        // 你好 in GB2312, base64: xOO6ww==
        let raw = crlf(
            "From: a@b\nSubject: =?GB2312?B?xOO6ww==?= ok\nX-Note: =?UTF-8?Q?caf=C3=A9?=\n\nbody\n",
        );
        let m = parse(&raw);
        assert_eq!(m.subject, "你好 ok");
        assert_eq!(m.header("x-note").next(), Some("café"));
    }

    #[test]
    fn multipart_alternative_prefers_plain() {
        let raw = crlf(
            "From: a@b\nSubject: alt\nMIME-Version: 1.0\n\
             Content-Type: multipart/alternative; boundary=\"XX\"\n\n\
             --XX\nContent-Type: text/plain; charset=utf-8\n\nplain version\n\
             --XX\nContent-Type: text/html; charset=utf-8\n\n<p>html <b>version</b></p>\n\
             --XX--\n",
        );
        let m = parse(&raw);
        assert_eq!(m.text.trim(), "plain version");
    }

    #[test]
    fn html_only_becomes_text() {
        let raw = crlf(
            "From: a@b\nSubject: html\nContent-Type: text/html; charset=utf-8\n\n\
             <html><body><p>Hello <b>agent</b></p><p>Second</p></body></html>\n",
        );
        let m = parse(&raw);
        assert!(m.text.contains("Hello agent"), "{:?}", m.text);
        assert!(m.text.contains("Second"), "{:?}", m.text);
        assert!(!m.text.contains('<'), "{:?}", m.text);
    }

    #[test]
    fn dsn_is_flagged() {
        let raw = crlf(
            "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n\
             Subject: Undelivered Mail Returned to Sender\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n\
             --B\nContent-Type: text/plain\n\nI'm sorry to have to inform you...\n\
             --B\nContent-Type: message/delivery-status\n\n\
             Reporting-MTA: dns; mx.example.org\n\nFinal-Recipient: rfc822; x@y\nAction: failed\n\
             Status: 5.1.1\n\
             --B\nContent-Type: text/rfc822-headers\n\nSubject: probe\n\
             --B--\n",
        );
        let m = parse(&raw);
        assert!(m.is_dsn);
        assert_eq!(m.from.as_deref(), Some("mailer-daemon@mx.example.org"));
        assert!(m.text.contains("I'm sorry"), "{:?}", m.text);

        // A delivery-status part alone, without the report wrapper, also counts.
        let raw = crlf(
            "From: postmaster@x\nSubject: failure\n\
             Content-Type: multipart/mixed; boundary=\"B\"\n\n\
             --B\nContent-Type: text/plain\n\nfailed\n\
             --B\nContent-Type: message/delivery-status\n\nAction: failed\n--B--\n",
        );
        assert!(parse(&raw).is_dsn);
    }

    #[test]
    fn broken_mime_unterminated_boundary() {
        let raw = crlf(
            "From: a@b\nSubject: broken\nContent-Type: multipart/mixed; boundary=\"B\"\n\n\
             --B\nContent-Type: text/plain\n\nfirst part text\n\
             --B\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
             !!!not base64###\n",
        );
        let m = parse(&raw);
        assert!(m.text.contains("first part text"), "{:?}", m.text);
        assert_eq!(m.subject, "broken");

        // Boundary declared but never present.
        let raw = crlf(
            "From: a@b\nSubject: x\nContent-Type: multipart/mixed; boundary=\"ZZ\"\n\nno parts here\n",
        );
        let m = parse(&raw);
        assert!(m.text.contains("no parts here"), "{:?}", m.text);
        assert!(
            m.problems.iter().any(|p| p.contains("boundary")),
            "{:?}",
            m.problems
        );
    }

    #[test]
    fn nul_bytes_and_garbage_do_not_panic() {
        let raw = b"From: a@b\r\nSubject: nul\0here\r\n\r\nbody\0with\0nul\r\n";
        let m = parse(raw);
        assert!(!m.text.contains('\0'));
        assert!(m.text.contains("body"));

        for raw in [
            &b""[..],
            b"\0\0\0",
            b"\xff\xfe\xfd",
            b"no header at all",
            b":\r\n\r\n",
            b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
            b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n",
            b"Subject: =?utf-8?B?****?=\r\n\r\n",
        ] {
            let _ = parse(raw);
        }
        assert!(!parse(b"").problems.is_empty());
    }

    #[test]
    fn pseudo_random_bytes_do_not_panic() {
        // A fixed xorshift stream over an alphabet heavy in MIME syntax.
        let alphabet = b"\r\n:;=?-<>\"\\ \tabcB64Qqp-Content-Type: multipart/boundary=\x00\xff\xc4";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in [10usize, 100, 1000, 5000] {
            for _ in 0..20 {
                let raw: Vec<u8> = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect();
                let _ = parse(&raw);
            }
        }
    }

    #[test]
    fn invalid_charset_is_noted_and_decoded_lossily() {
        let raw = crlf(
            "From: a@b\nSubject: cs\nContent-Type: text/plain; charset=x-no-such-charset\n\nhello\n",
        );
        let m = parse(&raw);
        assert_eq!(m.text.trim(), "hello");
        assert!(
            m.problems.iter().any(|p| p.contains("x-no-such-charset")),
            "{:?}",
            m.problems
        );
    }

    #[test]
    fn huge_body_is_capped() {
        let mut raw = crlf("From: a@b\nSubject: big\nContent-Type: text/plain; charset=utf-8\n\n");
        // 5 MB of multi-byte text so the cut must respect char boundaries.
        let line = "数据".repeat(50) + "\r\n";
        while raw.len() < 5 * 1024 * 1024 {
            raw.extend_from_slice(line.as_bytes());
        }
        let m = parse(&raw);
        assert!(m.text.len() <= MAX_TEXT_BYTES);
        assert!(m.text.len() > MAX_TEXT_BYTES - 8);
        assert!(
            m.problems.iter().any(|p| p.contains("cut")),
            "{:?}",
            m.problems
        );

        let mut raw = crlf("From: a@b\nSubject: big\nContent-Type: text/html\n\n<p>");
        raw.resize(raw.len() + 5 * 1024 * 1024, b'x');
        let m = parse(&raw);
        assert!(m.text.len() <= MAX_TEXT_BYTES);
    }

    #[test]
    fn bare_lf_line_endings() {
        let raw = b"From: A <a@b>\nSubject: lf only\nMessage-ID: <x@y>\n\nbody\n";
        let m = parse(raw);
        assert_eq!(m.subject, "lf only");
        assert_eq!(m.message_id.as_deref(), Some("x@y"));
        assert_eq!(m.text.trim(), "body");
    }

    #[test]
    fn unreadable_bytes_are_kept_as_text() {
        let m = parse(b"Subject: dp0123456789");
        assert!(m.text.contains("dp0123456789"), "{m:?}");
        assert!(
            m.problems
                .iter()
                .any(|p| p.contains("raw bytes were read as text"))
        );
    }
}
