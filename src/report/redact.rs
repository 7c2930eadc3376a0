//! Redaction of personal data in what the HTML report shows of replies (DESIGN.md "Ethics
//! guards": reports name no agent).
//!
//! - A `From` display name keeps only generic words (`support`, `team`, the target's own name
//!   …); every other word is an agent's name and becomes `[agent]`.
//! - An address keeps its domain; its local part is kept only when it names a role
//!   (`support@`, `no-reply@`, `help-desk@` …), else it becomes `[agent]`.
//! - Excerpts and subjects: every email address becomes `[email]`, every phone-like number
//!   (7 or more digits) `[phone]`, and every word of the sender's personal name `[agent]`.
//!
//! Deliberately eager: redacting an order number that looks like a phone number costs less
//! than publishing an agent's number. Pure functions; escaping is the template's job.

use std::sync::LazyLock;

use regex::Regex;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*").expect("email regex")
});

static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?\d[\d \-().]{5,}\d").expect("phone regex"));

/// Words of a display name or local part that name a role, not a person.
const GENERIC: &[&str] = &[
    "support",
    "team",
    "help",
    "helpdesk",
    "desk",
    "service",
    "services",
    "customer",
    "customers",
    "care",
    "cs",
    "via",
    "the",
    "and",
    "of",
    "no",
    "reply",
    "noreply",
    "donotreply",
    "do",
    "not",
    "notifications",
    "notification",
    "info",
    "ticket",
    "tickets",
    "mailer",
    "daemon",
    "postmaster",
    "system",
    "bot",
    "assistant",
    "auto",
    "center",
    "centre",
    "official",
    "simulated",
    "exchange",
    "客服",
];

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

fn is_generic(word: &str, keep: &[String]) -> bool {
    let w = word.to_lowercase();
    GENERIC.contains(&w.as_str())
        || keep.iter().any(|k| k.eq_ignore_ascii_case(&w))
        || w.chars().all(|c| c.is_ascii_digit())
        || w.chars().count() < 2
}

/// What a redactor may keep: the target's id and name words (an exchange's own name is not
/// personal data).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    keep: Vec<String>,
}

impl Redactor {
    /// A redactor for replies of the target called `id` / `name`.
    pub fn for_target(id: &str, name: &str) -> Redactor {
        let keep = words(id)
            .chain(words(name))
            .map(str::to_lowercase)
            .collect();
        Redactor { keep }
    }

    /// The personal words of a display name (those that are not generic).
    fn personal<'a>(&self, name: &'a str) -> Vec<&'a str> {
        words(name).filter(|w| !is_generic(w, &self.keep)).collect()
    }

    /// A `From` header for the report: `Alice via KuCoin Support <alice@kucoin.com>` becomes
    /// `[agent] via KuCoin Support <[agent]@kucoin.com>`.
    pub fn from(&self, address: Option<&str>, name: Option<&str>) -> String {
        let name = name.map(|n| self.name(n)).filter(|n| !n.is_empty());
        let address = address.map(|a| self.address(a));
        match (name, address) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (Some(n), None) => n,
            (None, Some(a)) => a,
            (None, None) => "—".into(),
        }
    }

    /// A display name with every personal word replaced by `[agent]` (runs collapsed).
    pub fn name(&self, name: &str) -> String {
        let mut out: Vec<String> = Vec::new();
        for w in name.split_whitespace() {
            let personal = words(w).any(|part| !is_generic(part, &self.keep));
            if personal {
                if out.last().is_none_or(|l| l != "[agent]") {
                    out.push("[agent]".into());
                }
            } else {
                out.push(w.to_owned());
            }
        }
        out.join(" ")
    }

    /// An address with a personal local part replaced by `[agent]`; the domain is kept.
    pub fn address(&self, address: &str) -> String {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return self.name(address);
        };
        let base = local.split('+').next().unwrap_or(local);
        if words(base).all(|w| is_generic(w, &self.keep)) {
            format!("{base}@{domain}")
        } else {
            format!("[agent]@{domain}")
        }
    }

    /// Free text (an excerpt or a subject): addresses, phone numbers and the words of
    /// `sender_name` replaced.
    pub fn text(&self, text: &str, sender_name: Option<&str>) -> String {
        let out = EMAIL.replace_all(text, "[email]");
        let out = PHONE.replace_all(&out, |c: &regex::Captures<'_>| {
            let m = &c[0];
            if m.chars().filter(char::is_ascii_digit).count() >= 7 {
                "[phone]".to_owned()
            } else {
                m.to_owned()
            }
        });
        let mut out = out.into_owned();
        if let Some(name) = sender_name {
            for w in self.personal(name) {
                if let Ok(re) = Regex::new(&format!(r"(?i)\b{}\b", regex::escape(w))) {
                    out = re.replace_all(&out, "[agent]").into_owned();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_and_contacts_are_redacted() {
        let r = Redactor::for_target("kucoin", "KuCoin");
        assert_eq!(
            r.from(
                Some("alice.chen@kucoin.example"),
                Some("Alice Chen via KuCoin Support")
            ),
            "[agent] via KuCoin Support <[agent]@kucoin.example>"
        );
        assert_eq!(
            r.from(Some("support+123@kucoin.example"), Some("KuCoin Support")),
            "KuCoin Support <support@kucoin.example>"
        );
        assert_eq!(
            r.address("no-reply@zendesk.example"),
            "no-reply@zendesk.example"
        );
        let text = "Hi, I am Alice. Call me at +1 (555) 010-0199 or alice@kucoin.example.\n\
                    Your TXID is 0xabc; 36 hours is normal.\nBest, alice chen";
        assert_eq!(
            r.text(text, Some("Alice Chen via KuCoin Support")),
            "Hi, I am [agent]. Call me at [phone] or [email].\n\
             Your TXID is 0xabc; 36 hours is normal.\nBest, [agent] [agent]"
        );
    }
}
