//! Simulated ticket and chat desks on top of the vendor fakes (`crate::vendors`).
//!
//! - [`TicketDesk`]: a Zendesk-like requests API ([`Zendesk`]) with the support side played:
//!   for every request created it emails the requester at once an automatic acknowledgement
//!   (`[Request received] [Request #ID] …`, `Auto-Submitted: auto-replied`), then, after a
//!   random delay and only while its [`DeskHours`] are open, the notification Zendesk sends
//!   when an agent answers (`[Request #ID]`), both through the loopback SMTP relay, so
//!   deskprobe matches them to the probe by its ticket reference.
//! - [`ChatDesk`]: a LiveChat-like Customer Chat API ([`LiveChat`]) whose plan follows the
//!   desk's hours: while open, a bot greeting then a human agent after a random delay; while
//!   closed, only the bot, saying the agents are offline.
//!
//! Like the email desk, every message says it comes from a simulated desk.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::email::DeskStats;
use super::{DeskHours, Rng, rfc5322};
use crate::vendors::livechat::{ChatPlan, LiveChat, PlanStep};
use crate::vendors::zendesk::{CreatedRequest, Zendesk};

/// How a simulated ticket desk behaves.
#[derive(Debug, Clone)]
pub struct TicketDeskSpec {
    /// The exchange it plays, e.g. "Simulated Exchange A".
    pub exchange: String,
    /// The agent who answers (the report must redact this name).
    pub agent: String,
    /// Delay of the agent's answer after the request was created, uniform in this range.
    pub reply_delay: (Duration, Duration),
    /// When the agent works.
    pub hours: DeskHours,
    /// The first request number (distinct per desk sharing a mailbox).
    pub first_request: u64,
    /// Seed of the delays.
    pub seed: u64,
}

/// A running ticket desk; dropping it stops it.
pub struct TicketDesk {
    spec: TicketDeskSpec,
    zendesk: Arc<Zendesk>,
    stats: Arc<Mutex<DeskStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TicketDesk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TicketDesk {
    /// Starts the Zendesk-like API on 127.0.0.1 (plain http) and the desk's agent, who
    /// emails through the sandbox's SMTP relay on `smtp_port`.
    pub async fn start(spec: TicketDeskSpec, smtp_port: u16) -> TicketDesk {
        let zendesk = Arc::new(Zendesk::start(None).await);
        zendesk.number_requests_from(spec.first_request);
        let stats = Arc::new(Mutex::new(DeskStats::default()));
        let task = tokio::spawn(run_tickets(
            spec.clone(),
            Arc::clone(&zendesk),
            smtp_port,
            Arc::clone(&stats),
        ));
        TicketDesk {
            spec,
            zendesk,
            stats,
            task,
        }
    }

    /// The channel's `base-url`.
    pub fn base_url(&self) -> String {
        self.zendesk.base_url()
    }

    /// What the desk did so far.
    pub fn stats(&self) -> DeskStats {
        self.stats.lock().unwrap().clone()
    }

    /// How it behaves.
    pub fn spec(&self) -> &TicketDeskSpec {
        &self.spec
    }
}

const ZENDESK_FROM: &str = "support@zendesk.localhost";

fn note(stats: &Mutex<DeskStats>, f: impl FnOnce(&mut DeskStats)) {
    f(&mut stats.lock().unwrap());
}

fn error(stats: &Mutex<DeskStats>, e: String) {
    note(stats, |s| {
        s.errors.push(e);
        if s.errors.len() > 20 {
            s.errors.remove(0);
        }
    });
}

fn ticket_ack(spec: &TicketDeskSpec, r: &CreatedRequest) -> String {
    format!(
        "Date: {date}\r\nFrom: \"{ex} Support\" <{ZENDESK_FROM}>\r\nTo: {to}\r\n\
         Subject: [Request received] [Request #{id}] {subject}\r\n\
         Message-ID: <zd-ack-{id}@zendesk.localhost>\r\nAuto-Submitted: auto-replied\r\n\
         X-Simulated-Desk: deskprobe-sandbox\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Your request ({id}) has been received and is being reviewed by our support staff.\r\n\r\n\
         {ex} Support (simulated desk, deskprobe sandbox)\r\n",
        date = rfc5322::date(SystemTime::now()),
        ex = spec.exchange,
        to = r.email,
        id = r.id,
        subject = r.subject,
    )
}

fn ticket_answer(spec: &TicketDeskSpec, zendesk: &Zendesk, r: &CreatedRequest) -> String {
    let text = format!(
        "Hello,\r\n\r\nwe checked your withdrawal: it was confirmed on chain, TXID 0x7a41c09e3d.\r\n\
         Please allow a few minutes for your wallet to show it.\r\n\r\n\
         {} Support (simulated desk, deskprobe sandbox)",
        spec.exchange
    );
    let mail = zendesk.notification(r.id, &r.email, &spec.agent, &text);
    format!(
        "Date: {}\r\nX-Simulated-Desk: deskprobe-sandbox\r\n{}",
        rfc5322::date(SystemTime::now()),
        String::from_utf8_lossy(&mail)
    )
}

async fn run_tickets(
    spec: TicketDeskSpec,
    zendesk: Arc<Zendesk>,
    smtp_port: u16,
    stats: Arc<Mutex<DeskStats>>,
) {
    let mut rng = Rng::new(spec.seed);
    let mut seen = 0usize;
    let mut pending: Vec<(SystemTime, CreatedRequest)> = Vec::new();
    loop {
        let requests = zendesk.requests();
        for r in requests.into_iter().skip(seen) {
            seen += 1;
            note(&stats, |s| s.received += 1);
            match rfc5322::send(smtp_port, ZENDESK_FROM, &r.email, &ticket_ack(&spec, &r)).await {
                Ok(()) => note(&stats, |s| s.acked += 1),
                Err(e) => error(&stats, format!("SMTP ack: {e}")),
            }
            let due = SystemTime::now() + rng.between(spec.reply_delay.0, spec.reply_delay.1);
            pending.push((due, r));
        }
        let now = SystemTime::now();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].0 <= now && spec.hours.is_open(now) {
                let (_, r) = pending.remove(i);
                let msg = ticket_answer(&spec, &zendesk, &r);
                match rfc5322::send(smtp_port, ZENDESK_FROM, &r.email, &msg).await {
                    Ok(()) => note(&stats, |s| s.replied += 1),
                    Err(e) => error(&stats, format!("SMTP answer: {e}")),
                }
            } else {
                i += 1;
            }
        }
        let waiting = pending.len() as u64;
        note(&stats, |s| s.waiting = waiting);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How a simulated chat desk behaves.
#[derive(Debug, Clone)]
pub struct ChatDeskSpec {
    /// The exchange it plays.
    pub exchange: String,
    /// The LiveChat organization id.
    pub organization: String,
    /// The bot's name (the demo's `rules.bot` recognises "Assistant").
    pub bot: String,
    /// The human agent (the report must redact this name).
    pub agent: String,
    /// When the human joins after the chat started, uniform in this range.
    pub human_after: (Duration, Duration),
    /// When humans work; outside these hours only the bot answers.
    pub hours: DeskHours,
    /// The first id number of its tokens, customers and chats (distinct per desk).
    pub first_id: u64,
    /// Seed of the delays.
    pub seed: u64,
}

/// A running chat desk; dropping it stops it.
pub struct ChatDesk {
    spec: ChatDeskSpec,
    livechat: Arc<LiveChat>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ChatDesk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ChatDesk {
    /// Starts the LiveChat-like API on 127.0.0.1 (plain http).
    pub async fn start(spec: ChatDeskSpec) -> ChatDesk {
        let livechat = Arc::new(LiveChat::start(&spec.organization, None).await);
        livechat.number_ids_from(spec.first_id);
        livechat.set_plan(plan(&spec, &mut Rng::new(spec.seed), SystemTime::now()));
        let task = {
            let (spec, livechat) = (spec.clone(), Arc::clone(&livechat));
            tokio::spawn(async move {
                // The plan is taken when a chat starts: keep it in step with the hours and
                // draw a new delay for the next chat.
                let mut rng = Rng::new(spec.seed);
                loop {
                    livechat.set_plan(plan(&spec, &mut rng, SystemTime::now()));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        ChatDesk {
            spec,
            livechat,
            task,
        }
    }

    /// The channel's `base-url`.
    pub fn base_url(&self) -> String {
        self.livechat.base_url()
    }

    /// How it behaves.
    pub fn spec(&self) -> &ChatDeskSpec {
        &self.spec
    }

    /// Chats started, greeted by the bot, answered by the human (errors: none kept).
    pub fn stats(&self) -> DeskStats {
        let human = PlanStep::agent(Duration::ZERO, &self.spec.agent, "").user_id;
        let bot = PlanStep::bot(Duration::ZERO, &self.spec.bot, "").user_id;
        let chats = self.livechat.chats();
        let said = |who: &str| {
            chats
                .iter()
                .filter(|c| c.events.iter().any(|e| e["author_id"] == who))
                .count() as u64
        };
        DeskStats {
            received: chats.len() as u64,
            acked: said(&bot),
            replied: said(&human),
            waiting: 0,
            errors: Vec::new(),
        }
    }
}

fn plan(spec: &ChatDeskSpec, rng: &mut Rng, now: SystemTime) -> ChatPlan {
    let greeting = Duration::from_millis(400);
    if spec.hours.is_open(now) {
        ChatPlan {
            queue: Some((1, 30)),
            steps: vec![
                PlanStep::bot(
                    greeting,
                    &spec.bot,
                    "Hi! I'm the virtual assistant (simulated desk). An agent will join shortly.",
                ),
                PlanStep::agent(
                    rng.between(spec.human_after.0, spec.human_after.1),
                    &spec.agent,
                    "Hello, I checked your withdrawal: it was confirmed, TXID 0x7a41c09e3d.",
                ),
            ],
        }
    } else {
        ChatPlan {
            queue: None,
            steps: vec![PlanStep::bot(
                greeting,
                &spec.bot,
                "Hi! I'm the virtual assistant (simulated desk). Our agents are offline now; \
                 please leave a message or write to us by email.",
            )],
        }
    }
}
