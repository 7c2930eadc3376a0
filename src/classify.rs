//! Decides what kind of response an inbound message is (bounce, auto-ack or human), in which
//! language it is written, and whether it states a script's expected facts.
//!
//! This module owns the classification signals and their order (DESIGN.md "Classifying a
//! response"), and keeps every signal that fired as a reason a reviewer can read. It must stay
//! pure: no I/O, no SQL, no network, no clock; it reads a [`ParsedMail`] and the target's
//! compiled [`Rules`] and nothing else. Matching a message to its probe is `matching`'s job.

use std::sync::LazyLock;

use regex::Regex;

use crate::mail::ParsedMail;
use crate::model::{EventKind, Rules};

/// What a message is, and every signal that made it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The kind of response.
    pub kind: EventKind,
    /// Each signal that fired for `kind`, in the order checked, in a form a reviewer can read
    /// (`header Auto-Submitted: auto-replied`, `rule auto-ack-subject '^\[Request received\]'`).
    pub reasons: Vec<String>,
}

/// Subject starts (after `Re:`/`Fwd:` and the like are stripped) of automatic replies,
/// compared case-insensitively.
const AUTO_SUBJECT_PREFIXES: &[&str] = &[
    "Auto:",
    "Automatic reply",
    "Autoreply",
    "Auto-reply",
    "Auto reply",
    "Auto response",
    "Automatic response",
    "Out of Office",
    "自动回复",
    "自動回覆",
    "自動回復",
];

/// Headers whose mere presence marks an automatic reply.
const AUTO_PRESENCE_HEADERS: &[&str] =
    &["X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Loop"];

/// Reply and forward prefixes stripped before looking at the subject: English, German (`AW`,
/// `WG`), Nordic (`SV`, `VS`), Chinese (`回复`, `答复`, `转发`, `回覆`, `轉寄`), with an
/// optional counter (`Re[2]:`) and a fullwidth colon.
static REPLY_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:re|fwd?|aw|wg|sv|vs|回复|答复|转发|回覆|轉寄)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*")
        .expect("static regex")
});

/// Subjects of delivery-failure reports, as sent by MAILER-DAEMON or postmaster.
static FAILURE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|undelivered|returned mail|returned to sender|delivery (?:status notification|failure|failed|has failed|problem|incomplete)|mail delivery (?:failed|failure|subsystem)|failure notice|could not be delivered|not (?:be )?delivered|non-?delivery|系统退信|退信|无法投递|投递失败",
    )
    .expect("static regex")
});

/// A line that introduces a quoted earlier message: everything from it on is quoted. Client
/// attributions ("On … wrote:" in several languages, or just "wrote:" when the client wrapped
/// it) and separators (Outlook, Foxmail/QQ, Thunderbird forwards). Applied to one trimmed line
/// at a time, after a cheap pre-check, so a megabyte of text costs a scan and not a regex
/// search with bounded repeats at every position.
static QUOTE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)^(?:
            -{2,}\s*(?:original\s+message|forwarded\s+message|原始邮件|原始郵件|转发邮件)\s*-{2,}
          | -{5,}\s*original\s*-{5,}
          | _{10,}
          | .*\bwrote\s*:
          | .*写道\s*[:：]
          | .*寫道\s*[:：]
          | le\s.*a\sécrit\s*:
          | am\s.*schrieb.*:
          | el\s.*escribió\s*:
          | em\s.*escreveu\s*:
          | .*написал\(?а?\)?\s*:
          | .*şunu\s+yazdı\s*:
          | vào\s.*đã\s+viết\s*:
          | .*님이\s+작성\s*:
          | .*(?:のメッセージ|さんは書きました)\s*[:：]
        )$",
    )
    .expect("static regex")
});

/// Longest line looked at as a possible quote header; attributions are short.
const MAX_QUOTE_HEADER_BYTES: usize = 600;

fn is_quote_header(line: &str) -> bool {
    let t = line.trim();
    let candidate =
        t.ends_with(':') || t.ends_with('：') || t.starts_with("--") || t.starts_with("__");
    candidate && t.len() <= MAX_QUOTE_HEADER_BYTES && QUOTE_HEADER.is_match(t)
}

/// Whether a mail is a bounce, an automatic acknowledgement, or from a human; see DESIGN.md.
///
/// Order: bounce, then auto-ack, then human. Only the signals of the kind chosen are returned,
/// so a bounce that also carries `Auto-Submitted` gives bounce reasons only: the reasons explain
/// the kind, they are not a dump of every header.
///
/// Decisions worth knowing:
/// - `Auto-Submitted` fires when present with any value other than `no` (parameters after `;`
///   ignored), including an empty value, as RFC 3834 reads.
/// - `X-Autoreply`, `X-Autorespond`, `X-Autoresponder` and `X-Loop` fire on presence.
/// - `X-Auto-Response-Suppress` is a request to *others* not to answer; some clients stamp
///   `DR`/`RN`/`NRN` on ordinary mail. It fires only when it names `All`, `OOF` or `AutoReply`,
///   which is what Exchange puts on its own automatic replies.
/// - `auto_ack_body` rules see the text with quotes stripped, so a human agent's reply quoting
///   an earlier "we received your request" is not taken for the auto-ack.
/// - `auto_ack_from` rules see the lowercased sender address.
pub fn classify_email(mail: &ParsedMail, rules: &Rules) -> Classification {
    let bounce = bounce_reasons(mail);
    if !bounce.is_empty() {
        return Classification {
            kind: EventKind::Bounce,
            reasons: bounce,
        };
    }
    let auto = auto_ack_reasons(mail, rules);
    if !auto.is_empty() {
        return Classification {
            kind: EventKind::AutoAck,
            reasons: auto,
        };
    }
    Classification {
        kind: EventKind::Human,
        reasons: vec!["no automation signal".into()],
    }
}

fn bounce_reasons(mail: &ParsedMail) -> Vec<String> {
    let mut reasons = Vec::new();
    if mail.is_dsn {
        reasons.push("delivery status notification (multipart/report delivery-status)".into());
    }
    if let Some(from) = &mail.from {
        let local = from.rsplit_once('@').map_or(from.as_str(), |(l, _)| l);
        let daemon = ["mailer-daemon", "postmaster"]
            .into_iter()
            .find(|d| local.eq_ignore_ascii_case(d));
        if let Some(daemon) = daemon
            && FAILURE_SUBJECT.is_match(&mail.subject)
        {
            reasons.push(format!(
                "from {} with delivery-failure subject '{}'",
                daemon.to_uppercase(),
                short(&mail.subject)
            ));
        }
    }
    reasons
}

fn auto_ack_reasons(mail: &ParsedMail, rules: &Rules) -> Vec<String> {
    let mut reasons = Vec::new();
    for value in mail.header("auto-submitted") {
        let kind = value.split(';').next().unwrap_or_default().trim();
        if !kind.eq_ignore_ascii_case("no") {
            reasons.push(format!("header Auto-Submitted: {}", short(value)));
        }
    }
    for value in mail.header("precedence") {
        let v = value.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "bulk" | "list" | "junk" | "auto_reply") {
            reasons.push(format!("header Precedence: {}", short(value)));
        }
    }
    for name in AUTO_PRESENCE_HEADERS {
        for value in mail.header(name) {
            reasons.push(format!("header {name}: {}", short(value)));
        }
    }
    for value in mail.header("x-auto-response-suppress") {
        let fires = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(str::trim)
            .any(|t| {
                ["all", "oof", "autoreply"]
                    .iter()
                    .any(|k| t.eq_ignore_ascii_case(k))
            });
        if fires {
            reasons.push(format!("header X-Auto-Response-Suppress: {}", short(value)));
        }
    }
    let subject = strip_reply_prefixes(&mail.subject);
    if let Some(prefix) = AUTO_SUBJECT_PREFIXES
        .iter()
        .find(|p| starts_with_ignore_case(subject, p))
    {
        reasons.push(format!("subject prefix '{prefix}'"));
    }
    for re in &rules.auto_ack_subject {
        if re.is_match(&mail.subject) {
            reasons.push(format!("rule auto-ack-subject '{}'", re.as_str()));
        }
    }
    if !rules.auto_ack_body.is_empty() {
        let body = strip_quoted(&mail.text);
        for re in &rules.auto_ack_body {
            if re.is_match(&body) {
                reasons.push(format!("rule auto-ack-body '{}'", re.as_str()));
            }
        }
    }
    if let Some(from) = &mail.from {
        for re in &rules.auto_ack_from {
            if re.is_match(from) {
                reasons.push(format!("rule auto-ack-from '{}'", re.as_str()));
            }
        }
    }
    reasons
}

/// The subject without any leading `Re:`, `Fwd:`, `AW:`, `回复：`… (repeated).
fn strip_reply_prefixes(subject: &str) -> &str {
    let mut s = subject.trim_start();
    // Bounded: each round removes at least one char.
    while let Some(m) = REPLY_PREFIX.find(s) {
        if m.end() == 0 {
            break;
        }
        s = &s[m.end()..];
    }
    s
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.to_lowercase() == prefix.to_lowercase())
}

/// A header value or subject cut for a reason string, so one odd header cannot bloat the store.
fn short(s: &str) -> String {
    const MAX: usize = 120;
    let s = s.trim();
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// The text a sender wrote themselves: lines starting with `>` removed, and everything from a
/// quote header on ("On … wrote:", "-----Original Message-----", "在 … 写道：", and their
/// equivalents in the languages we probe in) cut. A message that is only quotes gives an empty
/// string: the quoted probe must not speak for the sender.
pub fn strip_quoted(text: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in text.lines() {
        if is_quote_header(line) {
            // An attribution wrapped over two lines ("On Mon, … Alice <a@b>" / "wrote:") leaves
            // its first line behind: drop it too.
            let t = line.trim_start();
            if (starts_with_ignore_case(t, "wrote")
                || t.starts_with("写道")
                || t.starts_with("寫道"))
                && let Some(last) = kept.iter().rposition(|l| !l.trim().is_empty())
            {
                let l = kept[last].trim_start();
                if starts_with_ignore_case(l, "on ") || l.starts_with('在') || l.starts_with('於')
                {
                    kept.truncate(last);
                }
            }
            break;
        }
        if !line.trim_start().starts_with('>') {
            kept.push(line);
        }
    }
    kept.join("\n").trim().to_owned()
}

/// Texts shorter than this many letters are "very short": an unreliable guess on them is
/// dropped rather than stored.
const SHORT_TEXT_LETTERS: usize = 40;

/// The ISO 639-1 code of the language the sender wrote in, or `None` when the guess is
/// unreliable on a very short text (or there is no text). Quoted parts are stripped first so
/// the quoted probe does not decide the language of the reply.
pub fn detect_language(text: &str) -> Option<String> {
    // Long texts are sampled: the language is settled well before 64 KiB, and the cost is not.
    // The sender's own words come first, so cutting before stripping loses nothing of them.
    let own = strip_quoted(cut_chars(text, 64 * 1024));
    let info = whatlang::detect(&own)?;
    let letters = own.chars().filter(|c| c.is_alphabetic()).count();
    if !info.is_reliable() && letters < SHORT_TEXT_LETTERS {
        return None;
    }
    Some(iso639_1(info.lang()).to_owned())
}

fn cut_chars(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The two-letter code for each language whatlang knows.
fn iso639_1(lang: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match lang {
        Epo => "eo",
        Eng => "en",
        Rus => "ru",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Ita => "it",
        Ben => "bn",
        Fra => "fr",
        Deu => "de",
        Ukr => "uk",
        Kat => "ka",
        Ara => "ar",
        Hin => "hi",
        Jpn => "ja",
        Heb => "he",
        Yid => "yi",
        Pol => "pl",
        Amh => "am",
        Jav => "jv",
        Kor => "ko",
        Nob => "nb",
        Dan => "da",
        Swe => "sv",
        Fin => "fi",
        Tur => "tr",
        Nld => "nl",
        Hun => "hu",
        Ces => "cs",
        Ell => "el",
        Bul => "bg",
        Bel => "be",
        Mar => "mr",
        Kan => "kn",
        Ron => "ro",
        Slv => "sl",
        Hrv => "hr",
        Srp => "sr",
        Mkd => "mk",
        Lit => "lt",
        Lav => "lv",
        Est => "et",
        Tam => "ta",
        Vie => "vi",
        Urd => "ur",
        Tha => "th",
        Guj => "gu",
        Uzb => "uz",
        Pan => "pa",
        Aze => "az",
        Ind => "id",
        Tel => "te",
        Pes => "fa",
        Mal => "ml",
        Ori => "or",
        Mya => "my",
        Nep => "ne",
        Sin => "si",
        Khm => "km",
        Tuk => "tk",
        Aka => "ak",
        Zul => "zu",
        Sna => "sn",
        Afr => "af",
        Lat => "la",
        Slk => "sk",
        Cat => "ca",
        Tgl => "tl",
        Hye => "hy",
    }
}

/// Whether the reply states every expected fact of the script: `None` when the script expects
/// nothing, else `true` iff every regex matches the text with quotes stripped (so facts quoted
/// from the probe itself do not count).
pub fn facts_matched(expect: &[Regex], text: &str) -> Option<bool> {
    if expect.is_empty() {
        return None;
    }
    let own = strip_quoted(text);
    Some(expect.iter().all(|re| re.is_match(&own)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str, headers: &[(&str, &str)], text: &str) -> ParsedMail {
        ParsedMail {
            from: Some("agent@exchange.example".into()),
            subject: subject.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
            text: text.into(),
            ..ParsedMail::default()
        }
    }

    fn kind_of(m: &ParsedMail) -> (EventKind, Vec<String>) {
        let c = classify_email(m, &Rules::default());
        (c.kind, c.reasons)
    }

    #[test]
    fn plain_reply_is_human() {
        let (kind, reasons) = kind_of(&mail("Re: Withdrawal", &[("X-Mailer", "Outlook")], "Hi"));
        assert_eq!(kind, EventKind::Human);
        assert_eq!(reasons, vec!["no automation signal"]);
    }

    #[test]
    fn dsn_is_bounce() {
        let mut m = mail("Anything", &[("Auto-Submitted", "auto-replied")], "");
        m.is_dsn = true;
        let (kind, reasons) = kind_of(&m);
        assert_eq!(kind, EventKind::Bounce);
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("delivery status"));
    }

    #[test]
    fn mailer_daemon_with_failure_subject_is_bounce() {
        let mut m = mail("Undelivered Mail Returned to Sender", &[], "");
        m.from = Some("MAILER-DAEMON@mx.example.org".to_lowercase());
        assert_eq!(kind_of(&m).0, EventKind::Bounce);
        assert!(kind_of(&m).1[0].starts_with("from MAILER-DAEMON"));
        m.from = Some("postmaster@mx.example.org".into());
        m.subject = "Delivery Status Notification (Failure)".into();
        assert_eq!(kind_of(&m).0, EventKind::Bounce);
        // The daemon address alone, with an ordinary subject, is not a bounce.
        m.subject = "Your weekly digest".into();
        assert_eq!(kind_of(&m).0, EventKind::Human);
        // Nor is a failure subject from an ordinary sender.
        m.from = Some("agent@exchange.example".into());
        m.subject = "Re: withdrawal could not be delivered to wallet".into();
        assert_eq!(kind_of(&m).0, EventKind::Human);
    }

    #[test]
    fn auto_submitted() {
        let m = mail(
            "Re: x",
            &[("Auto-Submitted", "auto-replied; owner-email=x@y")],
            "",
        );
        assert_eq!(
            kind_of(&m),
            (
                EventKind::AutoAck,
                vec!["header Auto-Submitted: auto-replied; owner-email=x@y".to_owned()]
            )
        );
        let m = mail("Re: x", &[("Auto-Submitted", " No ")], "");
        assert_eq!(kind_of(&m).0, EventKind::Human);
    }

    #[test]
    fn precedence() {
        for v in ["bulk", "list", "junk", "auto_reply", "Bulk"] {
            let m = mail("x", &[("Precedence", v)], "");
            let (kind, reasons) = kind_of(&m);
            assert_eq!(kind, EventKind::AutoAck, "{v}");
            assert_eq!(reasons, vec![format!("header Precedence: {v}")]);
        }
        assert_eq!(
            kind_of(&mail("x", &[("Precedence", "first-class")], "")).0,
            EventKind::Human
        );
    }

    #[test]
    fn presence_headers() {
        for name in ["X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Loop"] {
            let m = mail("x", &[(name, "yes")], "");
            assert_eq!(
                kind_of(&m),
                (EventKind::AutoAck, vec![format!("header {name}: yes")]),
                "{name}"
            );
        }
    }

    #[test]
    fn auto_response_suppress_only_all_or_oof() {
        for v in ["All", "OOF", "DR, OOF, AutoReply", "all"] {
            let m = mail("x", &[("X-Auto-Response-Suppress", v)], "");
            assert_eq!(kind_of(&m).0, EventKind::AutoAck, "{v}");
        }
        for v in ["DR", "RN, NRN", ""] {
            let m = mail("x", &[("X-Auto-Response-Suppress", v)], "");
            assert_eq!(kind_of(&m).0, EventKind::Human, "{v}");
        }
    }

    #[test]
    fn subject_prefixes_after_reply_prefixes() {
        for s in [
            "Automatic reply: Withdrawal still pending",
            "RE: Auto: your message",
            "Re: Fwd: AutoReply: hello",
            "Out of Office: back Monday",
            "out of office",
            "回复：自动回复：提现",
            "Re[2]: 自动回复: 提现",
            "AW: Automatic Reply",
        ] {
            let (kind, reasons) = kind_of(&mail(s, &[], ""));
            assert_eq!(kind, EventKind::AutoAck, "{s}");
            assert!(reasons[0].starts_with("subject prefix"), "{reasons:?}");
        }
        for s in [
            "Re: Automation of withdrawals",
            "Auto withdrawals",
            "About: Out of Office policy",
        ] {
            assert_eq!(kind_of(&mail(s, &[], "")).0, EventKind::Human, "{s}");
        }
    }

    #[test]
    fn per_target_rules() {
        let rules = Rules {
            auto_ack_subject: vec![Regex::new(r"^\[Request received\]").unwrap()],
            auto_ack_body: vec![Regex::new(r"(?i)we have received your request").unwrap()],
            auto_ack_from: vec![Regex::new(r"^noreply@").unwrap()],
            ..Rules::default()
        };
        let mut m = mail(
            "[Request received] Withdrawal",
            &[],
            "We have received your request.",
        );
        m.from = Some("noreply@exchange.example".into());
        let c = classify_email(&m, &rules);
        assert_eq!(c.kind, EventKind::AutoAck);
        assert_eq!(
            c.reasons,
            vec![
                r"rule auto-ack-subject '^\[Request received\]'",
                "rule auto-ack-body '(?i)we have received your request'",
                "rule auto-ack-from '^noreply@'",
            ]
        );
        // A human agent quoting the auto-ack is not an auto-ack.
        let m = mail(
            "Re: Withdrawal",
            &[],
            "Your withdrawal is done.\n\nOn Mon, 2 Nov 2026, Support wrote:\n> We have received your request.",
        );
        assert_eq!(classify_email(&m, &rules).kind, EventKind::Human);
    }

    #[test]
    fn every_signal_is_a_reason() {
        let m = mail(
            "Automatic reply: Withdrawal",
            &[
                ("Auto-Submitted", "auto-replied"),
                ("Precedence", "bulk"),
                ("X-Autoreply", "yes"),
                ("X-Auto-Response-Suppress", "All"),
            ],
            "",
        );
        let (kind, reasons) = kind_of(&m);
        assert_eq!(kind, EventKind::AutoAck);
        assert_eq!(
            reasons,
            vec![
                "header Auto-Submitted: auto-replied",
                "header Precedence: bulk",
                "header X-Autoreply: yes",
                "header X-Auto-Response-Suppress: All",
                "subject prefix 'Automatic reply'",
            ]
        );
    }

    #[test]
    fn human_reply_quoting_the_probe_stays_human() {
        let m = mail(
            "Re: Withdrawal still pending [ref dp0123456789]",
            &[("In-Reply-To", "<p1@example.org>")],
            "Dear customer, your withdrawal was approved.\n\n\
             On Mon, Nov 2, 2026 at 11:00 AM Lin <shopper@example.org> wrote:\n\
             > Hello, my withdrawal has been pending for 3 hours. Auto: please help\n\
             > Precedence: bulk\n",
        );
        assert_eq!(kind_of(&m).0, EventKind::Human);
    }

    #[test]
    fn strip_quoted_variants() {
        let t = "Thanks!\n> quoted\nmore\n-----Original Message-----\nFrom: x\nold";
        assert_eq!(strip_quoted(t), "Thanks!\nmore");
        let t = "您好，已处理。\n\n在 2026年11月2日 11:00，Lin <a@b> 写道：\n> Hello";
        assert_eq!(strip_quoted(t), "您好，已处理。");
        let t = "Done.\nOn Mon, 2 Nov 2026 at 11:00, Lin <shopper@example.org>\nwrote:\n> Hello";
        assert_eq!(strip_quoted(t), "Done.");
        assert_eq!(strip_quoted("> only quoted\n>> more"), "");
        let t = "好的\nLin <a@b> 于2026年11月2日周一 11:00写道：\n> Hello";
        assert_eq!(strip_quoted(t), "好的");
        let t = "Hi\n\n________________________________\nFrom: Lin\nSent: Monday";
        assert_eq!(strip_quoted(t), "Hi");
        let t = "OK\n------------------ 原始邮件 ------------------\n发件人: x";
        assert_eq!(strip_quoted(t), "OK");
    }

    #[test]
    fn language_of_chinese_reply_quoting_english_probe() {
        let text = "您好，我们已经收到您的提现申请，目前正在处理中，预计两个小时内到账。\n\n\
                    On Mon, Nov 2, 2026 at 11:00 AM Lin <shopper@example.org> wrote:\n\
                    > Hello, my withdrawal of 0.5 BTC has been pending for more than three hours.\n\
                    > Could you please check what is going on and tell me when it will arrive?\n\
                    > I have already verified my account and the address is correct. Thank you.\n";
        assert_eq!(detect_language(text).as_deref(), Some("zh"));
    }

    #[test]
    fn languages() {
        let cases = [
            (
                "en",
                "Thank you for contacting us. Your withdrawal has been processed and should arrive within the next hour.",
            ),
            (
                "ru",
                "Спасибо за обращение. Ваш вывод средств обработан и поступит в течение часа.",
            ),
            (
                "ko",
                "문의해 주셔서 감사합니다. 출금이 처리되었으며 한 시간 이내에 도착할 예정입니다.",
            ),
            (
                "ja",
                "お問い合わせいただきありがとうございます。出金は処理済みで、一時間以内に着金する予定です。",
            ),
            (
                "es",
                "Gracias por contactarnos. Su retiro ha sido procesado y debería llegar dentro de la próxima hora.",
            ),
            (
                "tr",
                "Bizimle iletişime geçtiğiniz için teşekkür ederiz. Para çekme işleminiz tamamlandı ve bir saat içinde hesabınıza ulaşacaktır.",
            ),
            (
                "vi",
                "Cảm ơn bạn đã liên hệ với chúng tôi. Yêu cầu rút tiền của bạn đã được xử lý và sẽ đến trong vòng một giờ tới.",
            ),
        ];
        for (code, text) in cases {
            assert_eq!(detect_language(text).as_deref(), Some(code), "{text}");
        }
        assert_eq!(detect_language(""), None);
        assert_eq!(
            detect_language("> Hello, my withdrawal has been pending for hours."),
            None
        );
    }

    #[test]
    fn short_unreliable_text_has_no_language() {
        assert_eq!(detect_language("ok"), None);
        assert_eq!(detect_language("12345 !!"), None);
    }

    #[test]
    fn facts() {
        assert_eq!(facts_matched(&[], "anything"), None);
        let expect = vec![
            Regex::new(r"(?i)\bprocessed\b").unwrap(),
            Regex::new(r"\b\d+\s*hours?\b").unwrap(),
        ];
        assert_eq!(
            facts_matched(&expect, "It was processed, allow 2 hours."),
            Some(true)
        );
        assert_eq!(facts_matched(&expect, "It was processed."), Some(false));
        // A fact only present in the quoted probe does not count.
        let t = "It was processed.\n\nOn Mon, Lin wrote:\n> pending for 3 hours";
        assert_eq!(facts_matched(&expect, t), Some(false));
    }
}
