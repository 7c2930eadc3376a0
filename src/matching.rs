//! Ties an inbound message to the probe it answers: probe tokens, helpdesk ticket references,
//! and the [`ProbeIndex`] that tries the methods of DESIGN.md "Matching a response to its probe"
//! in their fixed order (thread, subaddress, ticket-ref, token).
//!
//! This module owns the token format and the matching order. It must stay pure: no I/O, no SQL,
//! no network, no clock. The caller builds the index from the store; an unmatched message is the
//! caller's to keep (it is never dropped).

use std::collections::HashMap;
use std::sync::LazyLock;

use rand::Rng;
use regex::Regex;

use crate::mail::ParsedMail;
use crate::model::MatchMethod;

/// The 32 symbols a token is written in: digits and lowercase letters without `i`, `l`, `o`,
/// `u`, so a token read aloud or retyped by an agent is not misread.
const TOKEN_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Symbols after the `dp` prefix: 50 bits, so collisions between probes are negligible.
const TOKEN_LEN: usize = 10;

/// A token anywhere in text. The boundaries are ASCII-only on purpose: a token glued to Chinese
/// text (`工单dp0123456789`) still counts, while one inside a longer ASCII word does not.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)dp[0-9abcdefghjkmnpqrstvwxyz]{10}(?-u:\b)").expect("static regex")
});

/// `[Request #12345]`, as Zendesk and others put in subjects.
static REQUEST_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\[\s*request\s*#\s*(\d+)\s*\]").expect("static regex"));

/// `[Ticket#12345]` or `[Ticket #12345]`.
static TICKET_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\[\s*ticket\s*#\s*(\d+)\s*\]").expect("static regex"));

/// A Zendesk encoded ticket id, `[1G7EOR-0Q2J]`: six then four uppercase letters or digits,
/// always in brackets (<https://support.zendesk.com/hc/en-us/articles/8396827889946>). Kept
/// strict (case-sensitive, exact lengths, and [`ticket_refs`] also wants a digit) because a
/// helpdesk that puts a fixed tag such as `[KUCOIN-HELP]` in every subject would otherwise tie
/// every later reply to the latest probe. The cost: the few ids with no digit at all (about 4%)
/// are not recognised, and those replies fall through to the token.
static ZENDESK_REF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[([0-9A-Z]{6}-[0-9A-Z]{4})\]").expect("static regex"));

/// A fresh probe token: `dp` and ten symbols of [`TOKEN_ALPHABET`].
pub fn new_token() -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(2 + TOKEN_LEN);
    token.push_str("dp");
    for _ in 0..TOKEN_LEN {
        token.push(char::from(
            TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())],
        ));
    }
    token
}

/// Every token-shaped word in `text` (case-insensitive), lowercased, without repeats, in order
/// of first appearance. Whether a token belongs to a probe is the index's question.
pub fn find_tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in TOKEN.find_iter(text) {
        let token = m.as_str().to_ascii_lowercase();
        if !out.contains(&token) {
            out.push(token);
        }
    }
    out
}

/// Helpdesk references in a subject, normalised as `kind:value`, without repeats, built-ins
/// first: `request:12345`, `ticket:12345`, `zendesk:1G7EOR-0Q2J`, then `custom:<group 1, or
/// the whole match>` for each of the target's `extra` patterns.
pub fn ticket_refs(subject: &str, extra: &[Regex]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |r: String| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    for (kind, re) in [
        ("request", &*REQUEST_REF),
        ("ticket", &*TICKET_REF),
        ("zendesk", &*ZENDESK_REF),
    ] {
        for c in re.captures_iter(subject) {
            let Some(v) = c.get(1).map(|v| v.as_str()) else {
                continue;
            };
            if kind == "zendesk" && !v.bytes().any(|b| b.is_ascii_digit()) {
                continue;
            }
            push(format!("{kind}:{v}"));
        }
    }
    for re in extra {
        for c in re.captures_iter(subject) {
            let value = c.get(1).or_else(|| c.get(0)).map(|m| m.as_str().trim());
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                push(format!("custom:{v}"));
            }
        }
    }
    out
}

/// A message tied to a probe, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The probe the message answers.
    pub probe_id: String,
    /// The method that tied them.
    pub method: MatchMethod,
}

/// What is known about the probes, for matching: built by the caller (from the store) with the
/// `insert_*` methods, then asked with [`ProbeIndex::match_probe`].
#[derive(Debug, Clone, Default)]
pub struct ProbeIndex {
    /// Normalised Message-ID → probe.
    message_ids: HashMap<String, String>,
    /// Lowercased token → probe.
    tokens: HashMap<String, String>,
    /// Reference → probes, oldest insertion first.
    ticket_refs: HashMap<String, Vec<String>>,
}

impl ProbeIndex {
    /// Records the Message-ID a probe was sent with (angle brackets optional).
    pub fn insert_message_id(&mut self, message_id: &str, probe_id: &str) {
        if let Some(key) = message_id_key(message_id) {
            self.message_ids.insert(key, probe_id.to_owned());
        }
    }

    /// Records a probe's token.
    pub fn insert_token(&mut self, token: &str, probe_id: &str) {
        let token = token.trim().to_ascii_lowercase();
        if !token.is_empty() {
            self.tokens.insert(token, probe_id.to_owned());
        }
    }

    /// Records a helpdesk reference learnt for a probe (`request:12345`, as [`ticket_refs`]
    /// gives). One reference may belong to several probes; re-inserting a pair makes it the
    /// most recent.
    pub fn insert_ticket_ref(&mut self, reference: &str, probe_id: &str) {
        let probes = self
            .ticket_refs
            .entry(reference.trim().to_owned())
            .or_default();
        probes.retain(|p| p != probe_id);
        probes.push(probe_id.to_owned());
    }

    /// Whether `message_id` is the Message-ID of one of our own probes (compared as in
    /// `thread` matching), e.g. a copy of a probe in a Sent folder, which is no response.
    pub fn is_probe_message_id(&self, message_id: &str) -> bool {
        message_id_key(message_id).is_some_and(|k| self.message_ids.contains_key(&k))
    }

    /// The probe `mail` answers, trying in order:
    /// 1. `thread`: an id of `In-Reply-To` (in order), then of `References` (newest, i.e. last,
    ///    first) is a probe's Message-ID. Ids compare with the local part exact (it is
    ///    case-sensitive by RFC 5322) and the domain case-insensitive.
    /// 2. `subaddress`: a recipient `local+TOKEN@domain` carries a known token (each
    ///    `+`-separated tag is tried, case-insensitively).
    /// 3. `ticket-ref`: a reference in the subject ([`ticket_refs`] with `extra_ticket_ref`) is
    ///    known; when several probes share it, the most recently inserted one wins, since the
    ///    caller inserts in the order the references were learnt and a reused helpdesk number
    ///    most likely belongs to the latest conversation.
    /// 4. `token`: a known token appears in the subject, then in the body text.
    ///
    /// Unknown ids, tokens and references never match; `None` when nothing does.
    pub fn match_probe(&self, mail: &ParsedMail, extra_ticket_ref: &[Regex]) -> Option<Match> {
        let found = |probe_id: &String, method| {
            Some(Match {
                probe_id: probe_id.clone(),
                method,
            })
        };

        let thread_ids = mail.in_reply_to.iter().chain(mail.references.iter().rev());
        for id in thread_ids {
            if let Some(p) = message_id_key(id).and_then(|k| self.message_ids.get(&k)) {
                return found(p, MatchMethod::Thread);
            }
        }

        for recipient in &mail.recipients {
            let local = recipient.rsplit_once('@').map_or("", |(l, _)| l);
            for tag in local.split('+').skip(1) {
                if let Some(p) = self.tokens.get(&tag.trim().to_ascii_lowercase()) {
                    return found(p, MatchMethod::Subaddress);
                }
            }
        }

        for reference in ticket_refs(&mail.subject, extra_ticket_ref) {
            if let Some(p) = self.ticket_refs.get(&reference).and_then(|ps| ps.last()) {
                return found(p, MatchMethod::TicketRef);
            }
        }

        for text in [&mail.subject, &mail.text] {
            for token in find_tokens(text) {
                if let Some(p) = self.tokens.get(&token) {
                    return found(p, MatchMethod::Token);
                }
            }
        }
        None
    }
}

/// A Message-ID as compared: brackets and space trimmed, the domain (after the last `@`)
/// lowercased, the local part kept as is.
fn message_id_key(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if id.is_empty() {
        return None;
    }
    Some(match id.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "dp0123456789";
    const T2: &str = "dpabcdefghjk";

    fn index() -> ProbeIndex {
        let mut idx = ProbeIndex::default();
        idx.insert_message_id("<p1.dp0123456789@Example.org>", "p1");
        idx.insert_token(T1, "p1");
        idx.insert_message_id("p2.dpabcdefghjk@example.org", "p2");
        idx.insert_token(T2, "p2");
        idx
    }

    fn mail() -> ParsedMail {
        ParsedMail {
            subject: "Re: Withdrawal still pending".into(),
            text: "Hello".into(),
            ..ParsedMail::default()
        }
    }

    fn matched(idx: &ProbeIndex, m: &ParsedMail) -> Option<(String, MatchMethod)> {
        idx.match_probe(m, &[]).map(|m| (m.probe_id, m.method))
    }

    #[test]
    fn tokens_are_well_formed_and_found() {
        for _ in 0..200 {
            let t = new_token();
            assert_eq!(t.len(), 12);
            assert!(t.starts_with("dp"));
            assert!(t[2..].bytes().all(|b| TOKEN_ALPHABET.contains(&b)), "{t}");
            assert_eq!(find_tokens(&format!("ref {t}.")), vec![t]);
        }
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn find_tokens_whole_words_case_insensitive() {
        let text = "[ref DP0123456789] again dp0123456789, 工单dpabcdefghjk号 \
                    shopper+dpzzzzzzzzzz@example.org";
        assert_eq!(find_tokens(text), vec![T1, T2, "dpzzzzzzzzzz"]);
        // Too long, too short, inside a word, or with letters outside the alphabet.
        for s in [
            "dp01234567890",
            "dp012345678",
            "xdp0123456789",
            "dp012345678i",
            "dp0123456789_x",
        ] {
            assert!(find_tokens(s).is_empty(), "{s}");
        }
    }

    #[test]
    fn ticket_refs_builtin_and_custom() {
        let extra = [
            Regex::new(r"Case\s+(\d{6})").unwrap(),
            Regex::new(r"SR-\d+").unwrap(),
        ];
        let s = "Re: [Request #12345] [Ticket#777] [Ticket #778] [1G7EOR-0Q2J] Case 123456 SR-42 \
                 [Request #12345]";
        assert_eq!(
            ticket_refs(s, &extra),
            vec![
                "request:12345",
                "ticket:777",
                "ticket:778",
                "zendesk:1G7EOR-0Q2J",
                "custom:123456",
                "custom:SR-42",
            ]
        );
        for s in [
            "Re: [URGENT-NOTE] withdrawal",
            "[KUCOIN-HELP] Re: withdrawal",
            "[UTF-8] and [ABCD-1234]",
            "1G7EOR-0Q2J without brackets",
            "[1g7eor-0q2j] lowercase",
            "Request #12345 without brackets",
        ] {
            assert!(ticket_refs(s, &[]).is_empty(), "{s}");
        }
    }

    #[test]
    fn thread_in_reply_to_and_references() {
        let idx = index();
        let mut m = mail();
        m.in_reply_to = vec!["p1.dp0123456789@EXAMPLE.ORG".into()];
        assert_eq!(matched(&idx, &m), Some(("p1".into(), MatchMethod::Thread)));
        // The local part is case-sensitive.
        m.in_reply_to = vec!["P1.dp0123456789@example.org".into()];
        assert_eq!(matched(&idx, &m), None);
        assert!(idx.is_probe_message_id("<p1.dp0123456789@example.ORG>"));
        assert!(!idx.is_probe_message_id("P1.dp0123456789@example.org"));
        assert!(!idx.is_probe_message_id(""));
        m.in_reply_to = vec!["unknown@x".into()];
        m.references = vec!["p2.dpabcdefghjk@example.org".into(), "other@x".into()];
        assert_eq!(matched(&idx, &m), Some(("p2".into(), MatchMethod::Thread)));
    }

    #[test]
    fn subaddress() {
        let idx = index();
        let mut m = mail();
        m.recipients = vec![
            "support@exchange.example".into(),
            "shopper+dpABCDEFGHJK@example.org".to_lowercase(),
        ];
        assert_eq!(
            matched(&idx, &m),
            Some(("p2".into(), MatchMethod::Subaddress))
        );
        m.recipients = vec!["shopper+dpzzzzzzzzzz@example.org".into()];
        assert_eq!(matched(&idx, &m), None);
    }

    #[test]
    fn ticket_ref_picks_latest_probe() {
        let mut idx = index();
        idx.insert_ticket_ref("request:12345", "p1");
        let mut m = mail();
        m.subject = "Re: [Request #12345] Withdrawal".into();
        assert_eq!(
            matched(&idx, &m),
            Some(("p1".into(), MatchMethod::TicketRef))
        );
        idx.insert_ticket_ref("request:12345", "p2");
        assert_eq!(
            matched(&idx, &m),
            Some(("p2".into(), MatchMethod::TicketRef))
        );
        // Re-learning it for p1 makes p1 the latest again.
        idx.insert_ticket_ref("request:12345", "p1");
        assert_eq!(
            matched(&idx, &m),
            Some(("p1".into(), MatchMethod::TicketRef))
        );

        idx.insert_ticket_ref("custom:SR-9", "p2");
        m.subject = "Your case SR-9".into();
        assert_eq!(matched(&idx, &m), None);
        let extra = [Regex::new(r"SR-\d+").unwrap()];
        assert_eq!(
            idx.match_probe(&m, &extra),
            Some(Match {
                probe_id: "p2".into(),
                method: MatchMethod::TicketRef
            })
        );
        m.subject = "[Request #99999]".into();
        assert_eq!(matched(&idx, &m), None);
    }

    #[test]
    fn token_in_subject_or_body() {
        let idx = index();
        let mut m = mail();
        m.subject = "Re: Withdrawal [ref DP0123456789]".into();
        assert_eq!(matched(&idx, &m), Some(("p1".into(), MatchMethod::Token)));
        m.subject = "Re: Withdrawal".into();
        m.text = "Hi\n> ref dpzzzzzzzzzz\n> ref dpabcdefghjk".into();
        assert_eq!(matched(&idx, &m), Some(("p2".into(), MatchMethod::Token)));
        // The subject is tried before the body.
        m.subject = "ref dp0123456789".into();
        assert_eq!(matched(&idx, &m), Some(("p1".into(), MatchMethod::Token)));
    }

    #[test]
    fn precedence_thread_over_subaddress_over_ref_over_token() {
        let mut idx = index();
        idx.insert_ticket_ref("ticket:5", "p1");
        let mut m = mail();
        m.in_reply_to = vec!["p1.dp0123456789@example.org".into()];
        m.recipients = vec!["shopper+dpabcdefghjk@example.org".into()];
        m.subject = "Re: [Ticket #5] ref dpabcdefghjk".into();
        m.text = "dpabcdefghjk".into();
        assert_eq!(matched(&idx, &m), Some(("p1".into(), MatchMethod::Thread)));
        m.in_reply_to.clear();
        assert_eq!(
            matched(&idx, &m),
            Some(("p2".into(), MatchMethod::Subaddress))
        );
        m.recipients.clear();
        assert_eq!(
            matched(&idx, &m),
            Some(("p1".into(), MatchMethod::TicketRef))
        );
        m.subject = "Re: ref dpabcdefghjk".into();
        assert_eq!(matched(&idx, &m), Some(("p2".into(), MatchMethod::Token)));
    }

    #[test]
    fn nothing_matches() {
        let idx = index();
        let mut m = mail();
        m.in_reply_to = vec!["someone@else".into()];
        m.references = vec!["".into(), "<>".into()];
        m.recipients = vec!["shopper@example.org".into(), "a+@b".into()];
        m.subject = "[Request #1] dp9999999999".into();
        m.text = "nothing here".into();
        assert_eq!(matched(&idx, &m), None);
        assert_eq!(
            ProbeIndex::default().match_probe(&ParsedMail::default(), &[]),
            None
        );
    }

    #[test]
    fn parsed_mail_end_to_end() {
        let raw = b"From: agent@exchange.example\r\n\
                    To: Shopper <shopper+DP0123456789@example.org>\r\n\
                    Subject: Re: Withdrawal\r\n\r\nDone.\r\n";
        let m = crate::mail::parse(raw);
        assert_eq!(
            matched(&index(), &m),
            Some(("p1".into(), MatchMethod::Subaddress))
        );
    }
}
