//! Sending one probe, crash-safe and at most once (DESIGN.md "Probe lifecycle").
//!
//! Order of work: resolve who/what/where from the config and the secret (a probe that cannot
//! be sent is never recorded as one), generate id, token and Message-ID, commit the probe as
//! `sending` with the exact outbound bytes, send, then record `sent` (with the server's
//! acceptance time) or `send_failed`. A crash between the send and the update leaves the row
//! `sending`, which recovery turns into `sent_unconfirmed`: never re-sent, still matched.
//! This module wires config, channels and store; it must not retry sends on its own.

use std::collections::BTreeMap;

use crate::channels::email::smtp::{OutboundEmail, SmtpError, SmtpSender};
use crate::channels::http::{HttpClient, HttpError};
use crate::channels::{ApiOutcome, ProbeText};
use crate::config::{
    Config, Persona, Script, SecretError, Target, TargetChannel, TemplateContext, TemplateError,
};
use crate::model::{ChannelKind, Millis, ProbeStatus, now_millis};
use crate::store::{NewProbe, SlotRef, StoreError, StoreHandle};

/// What to send.
#[derive(Debug, Clone)]
pub struct SendRequest {
    pub target: String,
    pub channel: ChannelKind,
    pub script: String,
    /// Default: the first persona that writes a language the script has.
    pub persona: Option<String>,
    /// Default: the persona's first language the script has, preferring the target's claimed
    /// languages.
    pub language: Option<String>,
    /// The schedule slot this send fulfils (none for a manual `deskprobe send`).
    pub slot: Option<SlotRef>,
}

/// The recorded result of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    pub probe_id: String,
    pub status: ProbeStatus,
    pub sent_at: Option<Millis>,
    pub error: Option<String>,
}

/// Why a probe could not be sent. Errors before `Store` happen before any row is written.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no target `{0}` in the config")]
    UnknownTarget(String),
    #[error(
        "target `{0}` is marked `verified = false`: check its addresses and claims, then set \
         `verified = true`"
    )]
    Unverified(String),
    #[error("target `{target}` has no enabled {channel} channel")]
    NoChannel {
        target: String,
        channel: ChannelKind,
    },
    #[error("sending over the {0} channel is not supported yet")]
    Unsupported(ChannelKind),
    #[error("no script `{0}` in the config")]
    UnknownScript(String),
    #[error("no persona `{0}` in the config")]
    UnknownPersona(String),
    #[error("no persona writes a language that script `{0}` has text in")]
    NoPersona(String),
    #[error("persona `{persona}` cannot send script `{script}` in `{language}`")]
    NoLanguage {
        persona: String,
        script: String,
        language: String,
    },
    #[error("mailbox `{0}` of the persona is not in the config")]
    UnknownMailbox(String),
    #[error("cannot get the password of mailbox `{mailbox}`")]
    Secret {
        mailbox: String,
        #[source]
        source: SecretError,
    },
    #[error("cannot render the probe text")]
    Template(#[from] TemplateError),
    #[error("cannot prepare the probe email")]
    Prepare(#[source] SmtpError),
    #[error("cannot record the probe")]
    Store(#[from] StoreError),
    #[error("cannot get secret `{name}` of the {channel} channel of target `{target}`")]
    ChannelSecret {
        target: String,
        channel: ChannelKind,
        name: String,
        #[source]
        source: SecretError,
    },
    #[error("cannot prepare the HTTP client of target `{target}`")]
    Http {
        target: String,
        #[source]
        source: Box<HttpError>,
    },
}

/// The subject and body of a probe in `language`.
fn render(
    script: &Script,
    language: &str,
    persona: &Persona,
    target: &Target,
    token: &str,
    probe_id: &str,
) -> Result<(String, String), TemplateError> {
    script.render(
        language,
        &TemplateContext {
            persona_name: persona.name.clone(),
            persona_email: persona.email.clone(),
            target_id: target.id.clone(),
            target_name: target.name.clone(),
            token: token.to_owned(),
            probe_id: probe_id.to_owned(),
        },
    )
}

/// A probe's Message-ID (without angle brackets): unique, and under the persona's own domain.
pub fn message_id(probe_id: &str, token: &str, persona_email: &str) -> String {
    let domain = persona_email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("deskprobe.invalid");
    format!("{}.{token}@{domain}", probe_id.to_lowercase())
}

/// The persona's address with the token as a subaddress (`user+TOKEN@domain`).
pub fn subaddress(email: &str, token: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => email.to_owned(),
    }
}

fn pick_persona<'c>(
    config: &'c Config,
    script: &Script,
    wanted: Option<&str>,
) -> Result<&'c Persona, SendError> {
    match wanted {
        Some(id) => config
            .persona(id)
            .ok_or_else(|| SendError::UnknownPersona(id.to_owned())),
        None => config
            .personas
            .iter()
            .find(|p| p.languages.iter().any(|l| script.texts.contains_key(l)))
            .ok_or_else(|| SendError::NoPersona(script.id.clone())),
    }
}

fn pick_language(
    persona: &Persona,
    script: &Script,
    target: &Target,
    wanted: Option<&str>,
) -> Result<String, SendError> {
    let usable = |l: &str| persona.languages.iter().any(|p| p == l) && script.texts.contains_key(l);
    let chosen = match wanted {
        Some(l) => usable(l).then(|| l.to_owned()),
        None => persona
            .languages
            .iter()
            .filter(|l| usable(l))
            .find(|l| target.claims.languages.contains(l))
            .or_else(|| persona.languages.iter().find(|l| usable(l)))
            .cloned(),
    };
    chosen.ok_or_else(|| SendError::NoLanguage {
        persona: persona.id.clone(),
        script: script.id.clone(),
        language: wanted.unwrap_or("any").to_owned(),
    })
}

/// Sends one probe now and records it. A refused or failed send is recorded as `send_failed`
/// and returned as an outcome, not an error.
#[tracing::instrument(skip_all, fields(target = %req.target, channel = %req.channel, script = %req.script))]
pub async fn send_probe(
    config: &Config,
    store: &StoreHandle,
    req: &SendRequest,
) -> Result<SendOutcome, SendError> {
    let target = config
        .target(&req.target)
        .ok_or_else(|| SendError::UnknownTarget(req.target.clone()))?;
    if !target.verified {
        return Err(SendError::Unverified(target.id.clone()));
    }
    let channel = target
        .channel(req.channel)
        .filter(|c| c.enabled)
        .ok_or_else(|| SendError::NoChannel {
            target: target.id.clone(),
            channel: req.channel,
        })?;
    let script = config
        .script(&req.script)
        .ok_or_else(|| SendError::UnknownScript(req.script.clone()))?;
    let persona = pick_persona(config, script, req.persona.as_deref())?;
    let language = pick_language(persona, script, target, req.language.as_deref())?;
    if req.channel != ChannelKind::Email {
        let what = ApiProbe {
            target,
            channel,
            script,
            persona,
            language,
        };
        return send_api(config, store, req, what).await;
    }
    let to = channel
        .address
        .clone()
        .ok_or_else(|| SendError::NoChannel {
            target: target.id.clone(),
            channel: req.channel,
        })?;
    let mailbox = config
        .mailbox(&persona.mailbox)
        .ok_or_else(|| SendError::UnknownMailbox(persona.mailbox.clone()))?;
    let password = mailbox
        .password
        .resolve()
        .map_err(|source| SendError::Secret {
            mailbox: mailbox.id.clone(),
            source,
        })?;
    let sender = SmtpSender::new(mailbox, &password, config.settings.send_timeout)
        .map_err(SendError::Prepare)?;

    let probe_id = ulid::Ulid::new().to_string();
    let token = crate::matching::new_token();
    let message_id = message_id(&probe_id, &token, &persona.email);
    let from = if mailbox.plus_addressing {
        subaddress(&persona.email, &token)
    } else {
        persona.email.clone()
    };
    let (subject, body) = render(script, &language, persona, target, &token, &probe_id)?;
    let raw = OutboundEmail {
        from_name: persona.name.clone(),
        from: from.clone(),
        to: to.clone(),
        subject: subject.clone(),
        body,
        message_id: message_id.clone(),
    }
    .format()
    .map_err(SendError::Prepare)?;

    let row = NewProbe {
        id: probe_id.clone(),
        target: target.id.clone(),
        channel: req.channel,
        script: script.id.clone(),
        persona: persona.id.clone(),
        language,
        urgency: script.urgency,
        token,
        message_id: Some(message_id),
        sender: Some(from.clone()),
        recipient: Some(to.clone()),
        subject: Some(subject),
        created_at: now_millis(),
        vantage: config.settings.vantage.clone(),
        slot: req.slot.clone(),
        sending_owner: Some(crate::daemon::process::identity()),
    };
    let raw_for_store = raw.clone();
    store
        .call(move |s| s.insert_sending_probe(&row, Some(&raw_for_store)))
        .await?;
    tracing::info!(probe = %probe_id, to = %to, "probe committed, sending");

    let result = sender.send(&from, &to, &raw).await;
    let id = probe_id.clone();
    match result {
        Ok(sent_at) => {
            let source = format!("smtp:{}", sender.server());
            store
                .call(move |s| s.mark_sent(&id, sent_at, &source))
                .await?;
            tracing::info!(probe = %probe_id, "probe accepted by the SMTP server");
            Ok(SendOutcome {
                probe_id,
                status: ProbeStatus::Sent,
                sent_at: Some(sent_at),
                error: None,
            })
        }
        Err(e) => {
            let message = error_chain(&e);
            let stored = message.clone();
            let retryable = e.reached_nobody();
            store
                .call(move |s| s.mark_send_failed(&id, &stored, retryable))
                .await?;
            tracing::warn!(probe = %probe_id, error = %message, "probe send failed");
            Ok(SendOutcome {
                probe_id,
                status: ProbeStatus::SendFailed,
                sent_at: None,
                error: Some(message),
            })
        }
    }
}

/// The resolved parts of a ticket or chat probe.
struct ApiProbe<'c> {
    target: &'c Target,
    channel: &'c TargetChannel,
    script: &'c Script,
    persona: &'c Persona,
    language: String,
}

/// The channel's secrets, read now (a probe whose secret is missing is never recorded).
pub fn channel_secrets(
    target: &Target,
    channel: &TargetChannel,
) -> Result<BTreeMap<String, String>, SendError> {
    channel
        .secrets
        .iter()
        .map(|(name, source)| {
            let value = source
                .resolve()
                .map_err(|source| SendError::ChannelSecret {
                    target: target.id.clone(),
                    channel: channel.kind,
                    name: name.clone(),
                    source,
                })?;
            Ok((name.clone(), value.expose().to_owned()))
        })
        .collect()
}

/// Sends a ticket or chat probe: the same lifecycle as email (row committed as `sending`
/// with the outbound text before any request; `sent` at the 2xx of the creation or the
/// acknowledged chat message), every HTTP exchange kept as evidence.
async fn send_api(
    config: &Config,
    store: &StoreHandle,
    req: &SendRequest,
    p: ApiProbe<'_>,
) -> Result<SendOutcome, SendError> {
    let ApiProbe {
        target,
        channel,
        script,
        persona,
        language,
    } = p;
    let secrets = channel_secrets(target, channel)?;
    let timeout = config.settings.send_timeout;
    let http =
        HttpClient::new(channel.ca_file.as_deref(), &persona.id, timeout).map_err(|source| {
            SendError::Http {
                target: target.id.clone(),
                source: Box::new(source),
            }
        })?;
    for value in secrets.values() {
        http.add_secret(value);
    }
    let probe_id = ulid::Ulid::new().to_string();
    let token = crate::matching::new_token();
    let (subject, body) = render(script, &language, persona, target, &token, &probe_id)?;
    let driver = channel.driver.clone().unwrap_or_default();
    let recipient = channel.base_url.clone().unwrap_or_else(|| {
        format!(
            "{driver}:{}",
            channel.organization_id.clone().unwrap_or_default()
        )
    });
    let outbound = serde_json::json!({
        "channel": req.channel.as_str(),
        "driver": driver,
        "to": recipient,
        "persona": {"name": persona.name, "email": persona.email},
        "subject": subject,
        "body": body,
        "token": token,
    });
    let outbound = http.redact(&serde_json::to_string_pretty(&outbound).unwrap_or_default());
    let text = ProbeText {
        probe_id: probe_id.clone(),
        token: token.clone(),
        target_id: target.id.clone(),
        target_name: target.name.clone(),
        persona_id: persona.id.clone(),
        persona_name: persona.name.clone(),
        persona_email: persona.email.clone(),
        language: language.clone(),
        subject: subject.clone(),
        body,
    };
    let row = NewProbe {
        id: probe_id.clone(),
        target: target.id.clone(),
        channel: req.channel,
        script: script.id.clone(),
        persona: persona.id.clone(),
        language,
        urgency: script.urgency,
        token,
        message_id: None,
        sender: Some(persona.email.clone()),
        recipient: Some(recipient.clone()),
        subject: Some(subject),
        created_at: now_millis(),
        vantage: config.settings.vantage.clone(),
        slot: req.slot.clone(),
        sending_owner: Some(crate::daemon::process::identity()),
    };
    store
        .call(move |s| s.insert_sending_probe(&row, Some(outbound.as_bytes())))
        .await?;
    tracing::info!(probe = %probe_id, channel = %req.channel, driver = %driver, to = %recipient, "probe committed, sending");

    // Several requests and 429 waits may happen; the whole send must end well before
    // `recover_interrupted` would take the row for a crashed one.
    let limit = timeout * 2;
    let send = async {
        match req.channel {
            ChannelKind::Chat => {
                crate::channels::chat::start(channel, &text, &http, &secrets, timeout).await
            }
            _ => crate::channels::ticket::send(channel, &text, &http, &secrets, timeout).await,
        }
    };
    let outcome = match tokio::time::timeout(limit, send).await {
        Ok(o) => o,
        Err(_) => ApiOutcome::Failed {
            error: format!(
                "the {} send did not finish within {} s; the remote may or may not have taken it",
                req.channel,
                limit.as_secs()
            ),
            retryable: false,
        },
    };
    let exchanges = http.take_exchanges();
    let id = probe_id.clone();
    store
        .call(move |s| s.record_exchanges(&id, &exchanges))
        .await?;
    let id = probe_id.clone();
    match outcome {
        ApiOutcome::Accepted {
            sent_at,
            source,
            refs,
            session,
            warning,
        } => {
            let refs = with_custom_refs(refs, target);
            // A ticket is followed only when something can be polled (declarative collect
            // steps); a chat always is.
            let session = match req.channel {
                ChannelKind::Chat => session,
                _ if !channel.steps.collect.is_empty() => session,
                _ => None,
            };
            let w = warning.clone();
            store
                .call(move |s| {
                    s.mark_api_sent(&id, sent_at, &source, &refs, session.as_ref(), w.as_deref())
                })
                .await?;
            if let Some(w) = &warning {
                tracing::warn!(probe = %probe_id, warning = %w, "probe accepted, but a later step failed");
            }
            tracing::info!(probe = %probe_id, channel = %req.channel, "probe accepted by the remote");
            Ok(SendOutcome {
                probe_id,
                status: ProbeStatus::Sent,
                sent_at: Some(sent_at),
                error: None,
            })
        }
        ApiOutcome::Unconfirmed {
            error,
            refs,
            session,
        } => {
            let refs = with_custom_refs(refs, target);
            let stored = error.clone();
            store
                .call(move |s| {
                    s.mark_api_unconfirmed(&id, &stored, &refs, session.as_ref(), now_millis())
                })
                .await?;
            tracing::warn!(probe = %probe_id, error = %error, "probe maybe accepted: answer unreadable; it will not be re-sent");
            Ok(SendOutcome {
                probe_id,
                status: ProbeStatus::SentUnconfirmed,
                sent_at: None,
                error: Some(error),
            })
        }
        ApiOutcome::Failed { error, retryable } => {
            let message = format!("probe {probe_id} to `{}`: {error}", target.id);
            let stored = message.clone();
            store
                .call(move |s| s.mark_send_failed(&id, &stored, retryable))
                .await?;
            tracing::warn!(probe = %probe_id, error = %message, "probe send failed");
            Ok(SendOutcome {
                probe_id,
                status: ProbeStatus::SendFailed,
                sent_at: None,
                error: Some(message),
            })
        }
    }
}

/// With the target's own `rules.ticket-ref` patterns, a reference `request:12345` is also
/// learnt as `custom:12345`, so a notification subject in the helpdesk's own form (captured
/// by such a pattern) matches too.
fn with_custom_refs(mut refs: Vec<String>, target: &Target) -> Vec<String> {
    if !target.rules.ticket_ref.is_empty() {
        let custom: Vec<String> = refs
            .iter()
            .filter_map(|r| r.split_once(':').map(|(_, v)| format!("custom:{v}")))
            .collect();
        for c in custom {
            if !refs.contains(&c) {
                refs.push(c);
            }
        }
    }
    refs
}

/// Marks probes left `sending` by a process that died as `sent_unconfirmed`: their owner
/// process is gone, or they are older than any send can take (twice the timeout plus a
/// minute).
pub async fn recover_interrupted(config: &Config, store: &StoreHandle) -> Result<(), StoreError> {
    let grace = config.settings.send_timeout.as_millis() as i64 * 2 + 60_000;
    let cutoff = now_millis() - grace;
    let ids = store
        .call(move |s| s.recover_interrupted_sends(cutoff, |o| !crate::daemon::process::alive(o)))
        .await?;
    for id in ids {
        tracing::warn!(probe = %id, "send was interrupted: probe is now sent_unconfirmed and will not be re-sent");
    }
    Ok(())
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_and_subaddresses() {
        assert_eq!(
            super::message_id("01JABC", "dp0123456789", "lin@example.org"),
            "01jabc.dp0123456789@example.org"
        );
        assert_eq!(
            super::subaddress("lin@example.org", "dp0123456789"),
            "lin+dp0123456789@example.org"
        );
    }
}
