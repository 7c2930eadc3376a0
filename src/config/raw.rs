//! The file as serde sees it: kebab-case keys, nearly everything optional, enums and durations as
//! strings. Keeping fields loose means a missing or misspelt value becomes one diagnostic among
//! many in `validate`, instead of a serde error that stops at the first problem.
//!
//! No `deny_unknown_fields`, `flatten` or untagged enums here: unknown keys are collected by
//! `serde_ignored`, which those features would defeat.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A loosely typed TOML value, for keys whose type `validate` checks itself.
pub type Any = toml::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawConfig {
    pub settings: Option<RawSettings>,
    #[serde(default)]
    pub mailbox: Vec<RawMailbox>,
    #[serde(default)]
    pub persona: Vec<RawPersona>,
    #[serde(default)]
    pub script: Vec<RawScript>,
    #[serde(default)]
    pub calendar: Vec<RawCalendar>,
    #[serde(default)]
    pub target: Vec<RawTarget>,
    #[serde(default)]
    pub schedule: Vec<RawSchedule>,
    pub limits: Option<RawLimits>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawSettings {
    pub database: Option<String>,
    pub vantage: Option<String>,
    pub observation_window: Option<RawPerChannel<String>>,
    pub compliance_target: Option<f64>,
    pub business_hours: Option<BTreeMap<String, Any>>,
    pub send_timeout: Option<String>,
    pub send_attempts: Option<u32>,
    pub retry_after: Option<String>,
}

/// `{ email = …, ticket = …, chat = … }`, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawPerChannel<T> {
    pub email: Option<T>,
    pub ticket: Option<T>,
    pub chat: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawMailbox {
    pub id: Option<String>,
    pub smtp: Option<String>,
    pub imap: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub folders: Option<Vec<String>>,
    pub plus_addressing: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawPersona {
    pub id: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub mailbox: Option<String>,
    pub languages: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawScript {
    pub id: Option<String>,
    pub urgency: Option<String>,
    #[serde(default)]
    pub expect: Vec<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, Any>,
    #[serde(default)]
    pub text: BTreeMap<String, RawScriptText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawScriptText {
    pub subject: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawCalendar {
    pub id: Option<String>,
    pub timezone: Option<String>,
    pub hours: Option<BTreeMap<String, Any>>,
    #[serde(default)]
    pub holidays: Vec<Any>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawTarget {
    pub id: Option<String>,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub verified: Option<bool>,
    pub claims: Option<RawClaims>,
    #[serde(default)]
    pub channel: Vec<RawChannel>,
    pub rules: Option<RawRules>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawClaims {
    pub source: Option<String>,
    pub captured: Option<Any>,
    pub availability: Option<String>,
    #[serde(default)]
    pub languages: Vec<String>,
    pub first_response: Option<RawPerChannel<String>>,
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawChannel {
    pub kind: Option<String>,
    pub address: Option<String>,
    pub driver: Option<String>,
    pub base_url: Option<String>,
    pub organization_id: Option<String>,
    pub enabled: Option<bool>,
    pub ca_file: Option<String>,
    pub events: Option<String>,
    pub poll_interval: Option<String>,
    pub closing_message: Option<String>,
    pub client_id: Option<String>,
    pub token_url: Option<String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, RawSecretRef>,
    #[serde(default)]
    pub step: Vec<RawStep>,
    #[serde(default)]
    pub collect_step: Vec<RawStep>,
    #[serde(default)]
    pub close_step: Vec<RawStep>,
}

/// `{ env = "NAME" }` or `{ file = "path" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawSecretRef {
    pub env: Option<String>,
    pub file: Option<String>,
}

/// One declarative step (`driver = "http"`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawStep {
    pub name: Option<String>,
    pub method: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub json: Option<Any>,
    pub form: Option<BTreeMap<String, String>>,
    pub multipart: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub expect: Option<Vec<i64>>,
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    pub poll: Option<RawPoll>,
    pub accepted: Option<bool>,
    pub reference: Option<String>,
    pub events: Option<RawEvents>,
    pub ws_connect: Option<String>,
    pub ws_send: Option<Any>,
    pub ws_receive: Option<RawWsReceive>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawPoll {
    pub until: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawWsReceive {
    pub until: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawEvents {
    pub list: Option<String>,
    pub id: Option<String>,
    pub at: Option<String>,
    pub text: Option<String>,
    pub author: Option<String>,
    pub from: Option<String>,
    pub agent: Option<String>,
    pub bot: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawRules {
    #[serde(default)]
    pub auto_ack_subject: Vec<String>,
    #[serde(default)]
    pub auto_ack_body: Vec<String>,
    #[serde(default)]
    pub auto_ack_from: Vec<String>,
    #[serde(default)]
    pub bot: Vec<String>,
    #[serde(default)]
    pub ticket_ref: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawSchedule {
    pub id: Option<String>,
    pub cron: Option<String>,
    pub jitter: Option<String>,
    pub targets: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub scripts: Option<Vec<String>>,
    pub personas: Option<Vec<String>>,
    pub stratify: Option<String>,
    pub missed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RawLimits {
    pub per_target_per_day: Option<i64>,
    pub min_gap: Option<String>,
    pub per_channel_per_day: Option<RawPerChannel<i64>>,
}
