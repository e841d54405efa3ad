//! **CustomerSession**: one actor per customer (desktop) in use on this node. It owns the
//! desktop's waiting polls (newest first), the apps' requests waiting for a poll (oldest first),
//! whether the desktop is "present" (between two polls), and the interactions under way, with
//! every timer of the protocol.
//!
//! An interaction goes: an app's request is paired with a poll and streamed to the desktop as
//! the poll's response (transfer 1); once it is through, the app waits up to
//! `timeout_no_reply` for the desktop's `/agentreply`; the reply is streamed to the app
//! (transfer 2); the interaction ends when that response ends, whichever way. Every failure
//! reaches both sides.

mod inspect;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::StatusCode;
use tokio::sync::oneshot;
use tracing::debug;

pub use self::inspect::{Describe, DesktopView, DrainPolls};
use super::{Location, Relay, Relayed, RequestId};
use crate::stats::counters;

/// How long a session with nothing to do stays, so that the desktop's next poll finds it warm.
const IDLE_GRACE: Duration = Duration::from_secs(30);
/// How long a retired session keeps passing on what was sent to it before it left.
const RETIRE_AFTER: Duration = Duration::from_secs(5);

/// What a desktop's poll gets.
pub enum PollOutcome {
    /// No app request within `timeout_agent`.
    NoClient,
    /// An app's request, to be streamed as the poll's response; `report` must be told how the
    /// transfer ended.
    Request {
        id: RequestId,
        message: Relayed,
        report: Report,
    },
}

/// What an app's relayed request gets.
pub enum ClientOutcome {
    /// The desktop is not attached, or not present.
    NoAgent,
    /// The desktop is attached elsewhere: ask there.
    Redirect(Location),
    /// The desktop's reply to request `id`, to be streamed as the app's response; `report`
    /// must be told how that ended.
    Reply {
        id: RequestId,
        message: Relayed,
        report: Report,
    },
    /// The interaction failed; the app gets this status and reason.
    Failed { status: StatusCode, reason: String },
}

/// The answer to a desktop's `/agentreply`.
pub enum ReplyVerdict {
    /// Stream the reply's body; the receiver then says whether the app got all of it.
    Go {
        delivered: oneshot::Receiver<bool>,
    },
    Refused {
        status: StatusCode,
        reason: String,
    },
}

/// Tells the session how a transfer ended: whether its last byte went out.
pub struct Report {
    session: Addr<CustomerSession>,
    id: RequestId,
    /// For a reply: the desktop's `/agentreply`, waiting to hear it.
    delivered: Option<oneshot::Sender<bool>>,
}

impl Report {
    pub fn done(self, complete: bool) {
        if let Some(delivered) = self.delivered {
            let _ = delivered.send(complete);
        }
        self.session.do_send(Transferred {
            id: self.id,
            complete,
        });
    }
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Poll {
    pub reply: oneshot::Sender<PollOutcome>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Client {
    pub message: Relayed,
    pub reply: oneshot::Sender<ClientOutcome>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Reply {
    pub id: RequestId,
    /// The customer id the replying desktop gave.
    pub customer: String,
    /// The reply, or why it cannot be relayed (a bad `X-iwp-responsecode`).
    pub message: Result<Relayed, String>,
    pub verdict: oneshot::Sender<ReplyVerdict>,
}

/// A transfer (either way) ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Transferred {
    id: RequestId,
    complete: bool,
}

/// Where the store says the desktop is, for the app request `id`: on its arrival, or at a
/// re-check while it waits.
#[derive(Message)]
#[rtype(result = "()")]
struct Located {
    id: RequestId,
    location: Option<Location>,
}

struct WaitingPoll {
    id: u64,
    reply: oneshot::Sender<PollOutcome>,
    timer: SpawnHandle,
    since: Instant,
}

struct WaitingApp {
    id: RequestId,
    message: Relayed,
    reply: oneshot::Sender<ClientOutcome>,
    /// Queued behind the desktop's next poll (else: just arrived, being located).
    queued: bool,
    /// When the app's request came (an interaction's duration counts from there).
    arrived: Instant,
}

enum Stage {
    /// The app's request is being streamed to the desktop.
    Requesting,
    /// Waiting for `/agentreply`, until the timer fires.
    AwaitingReply(SpawnHandle),
    /// The reply is being streamed to the app.
    Replying,
}

struct Interaction {
    /// The app's answer channel, until it is used.
    app: Option<oneshot::Sender<ClientOutcome>>,
    stage: Stage,
    /// When the app's request came.
    arrived: Instant,
}

pub struct CustomerSession {
    customer: String,
    relay: Relay,
    polls: Vec<WaitingPoll>,
    next_poll: u64,
    /// Apps' requests, oldest first: those queued for the next poll and those being located.
    apps: VecDeque<WaitingApp>,
    interactions: HashMap<RequestId, Interaction>,
    /// The desktop counts as present (between two polls) until then.
    present_until: Option<Instant>,
    idle_since: Option<Instant>,
    /// Left the registry: whatever still arrives goes to the customer's new session.
    retired: bool,
}

impl CustomerSession {
    pub fn new(customer: String, relay: Relay) -> Self {
        CustomerSession {
            customer,
            relay,
            polls: Vec::new(),
            next_poll: 0,
            apps: VecDeque::new(),
            interactions: HashMap::new(),
            present_until: None,
            idle_since: None,
            retired: false,
        }
    }

    fn present(&self) -> bool {
        self.present_until.is_some_and(|t| t > Instant::now())
    }

    fn mark_present(&mut self) {
        self.present_until = Some(Instant::now() + self.relay.timeouts().cache);
    }

    /// The newest poll whose desktop is still connected.
    fn take_poll(&mut self, ctx: &mut Context<Self>) -> Option<oneshot::Sender<PollOutcome>> {
        while let Some(poll) = self.polls.pop() {
            counters().agents.down();
            ctx.cancel_future(poll.timer);
            if !poll.reply.is_closed() {
                return Some(poll.reply);
            }
        }
        None
    }

    /// Pairs an app's request with a poll: the request becomes the poll's response.
    fn pair(
        &mut self,
        app: WaitingApp,
        poll: oneshot::Sender<PollOutcome>,
        ctx: &mut Context<Self>,
    ) {
        self.mark_present();
        let WaitingApp {
            id,
            message,
            reply,
            arrived,
            ..
        } = app;
        // The desktop's connection may be served by another worker thread: it can have the
        // request and send its `/agentreply` before this handler goes on, so the reply must
        // already find whose interaction it is.
        self.relay.interaction_started(&id, &self.customer);
        let report = Report {
            session: ctx.address(),
            id: id.clone(),
            delivered: None,
        };
        let outcome = PollOutcome::Request {
            id: id.clone(),
            message,
            report,
        };
        if let Err(PollOutcome::Request { message, .. }) = poll.send(outcome) {
            // That desktop connection closed at this very moment: try another poll, or wait.
            self.relay.interaction_ended(&id);
            let app = WaitingApp {
                id,
                message,
                reply,
                queued: false,
                arrived,
            };
            self.arrive(app, ctx);
            return;
        }
        debug!(customer = %self.customer, %id, "app request paired with a poll");
        let stats = counters();
        stats.interactions_started.one();
        stats.interactions.up();
        stats.interaction_customers.insert(&self.customer);
        let interaction = Interaction {
            app: Some(reply),
            stage: Stage::Requesting,
            arrived,
        };
        self.interactions.insert(id, interaction);
    }

    /// An app's request is here (or back): a poll takes it, or the store is asked where the
    /// desktop is.
    fn arrive(&mut self, app: WaitingApp, ctx: &mut Context<Self>) {
        if let Some(poll) = self.take_poll(ctx) {
            self.pair(app, poll, ctx);
            return;
        }
        self.locate(&app.id, ctx);
        self.apps.push_back(app);
    }

    /// Asks the store where the desktop is, for the app request `id` (answer: [`Located`]).
    fn locate(&self, id: &RequestId, ctx: &mut Context<Self>) {
        let (relay, customer, session) = (self.relay.clone(), self.customer.clone(), ctx.address());
        let id = id.clone();
        actix::spawn(async move {
            // A store failure reads as "not attached": the app hears "no agent" and may retry.
            let location = relay.locate(&customer).await.unwrap_or(None);
            session.do_send(Located { id, location });
        });
    }

    /// Ends interaction `id`, telling its app `outcome` if it has not had its answer yet;
    /// `completed` when the app had the whole reply.
    fn end(
        &mut self,
        id: &RequestId,
        outcome: Option<ClientOutcome>,
        completed: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(interaction) = self.interactions.remove(id) else {
            return;
        };
        let stats = counters();
        stats.interactions_ended.one();
        stats.interactions.down();
        if completed {
            stats.durations.one();
            let ms = interaction.arrived.elapsed().as_millis();
            stats.duration_ms.add(ms.min(u64::MAX as u128) as u64);
        } else {
            stats.interactions_failed.one();
        }
        if let Stage::AwaitingReply(timer) = interaction.stage {
            ctx.cancel_future(timer);
        }
        if let (Some(app), Some(outcome)) = (interaction.app, outcome) {
            let _ = app.send(outcome);
        }
        self.relay.interaction_ended(id);
    }

    fn poll_timed_out(&mut self, poll: u64) {
        if let Some(at) = self.polls.iter().position(|p| p.id == poll) {
            let poll = self.polls.remove(at);
            counters().agents.down();
            self.mark_present();
            let _ = poll.reply.send(PollOutcome::NoClient);
        }
    }

    fn reply_timed_out(&mut self, id: &RequestId, ctx: &mut Context<Self>) {
        let outcome = ClientOutcome::Failed {
            status: StatusCode::GATEWAY_TIMEOUT,
            reason: "HTTP 504: Gateway Timeout (No reply from agent)".to_owned(),
        };
        self.end(id, Some(outcome), false, ctx);
    }

    fn idle(&self) -> bool {
        self.polls.is_empty()
            && self.apps.is_empty()
            && self.interactions.is_empty()
            && !self.present()
    }

    /// Leaves the registry once idle for a while. Anything that still reaches this session
    /// afterwards is passed on to the customer's next one.
    fn retire_if_idle(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        if !self.idle() {
            self.idle_since = None;
            return;
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= IDLE_GRACE {
            self.retired = true;
            self.relay.retire(&self.customer, &ctx.address());
            ctx.run_later(RETIRE_AFTER, |_, ctx| ctx.stop());
        }
    }
}

impl Actor for CustomerSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Messages come with `do_send`, which no mailbox limit refuses: back-pressure comes
        // from the HTTP side.
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.retire_if_idle(ctx));
    }
}

impl Handler<Poll> for CustomerSession {
    type Result = ();

    fn handle(&mut self, msg: Poll, ctx: &mut Self::Context) {
        if self.retired {
            return self.relay.session(&self.customer).do_send(msg);
        }
        // The oldest app request queued for the desktop goes first.
        if let Some(at) = self
            .apps
            .iter()
            .position(|a| a.queued && !a.reply.is_closed())
        {
            let app = self.apps.remove(at).expect("found above");
            self.pair(app, msg.reply, ctx);
            return;
        }
        self.apps.retain(|a| !(a.queued && a.reply.is_closed()));
        if self.relay.draining() {
            // Nothing for it now, and no waiting on a node about to leave.
            self.mark_present();
            let _ = msg.reply.send(PollOutcome::NoClient);
            return;
        }
        let id = self.next_poll;
        self.next_poll += 1;
        let timer = ctx.run_later(self.relay.timeouts().agent, move |act, _| {
            act.poll_timed_out(id)
        });
        let stats = counters();
        stats.agents_waited.one();
        stats.agents.up();
        stats.agent_customers.insert(&self.customer);
        self.polls.push(WaitingPoll {
            id,
            reply: msg.reply,
            timer,
            since: Instant::now(),
        });
    }
}

impl Handler<Client> for CustomerSession {
    type Result = ();

    fn handle(&mut self, msg: Client, ctx: &mut Self::Context) {
        if self.retired {
            return self.relay.session(&self.customer).do_send(msg);
        }
        let app = WaitingApp {
            id: Relay::new_request_id(),
            message: msg.message,
            reply: msg.reply,
            queued: false,
            arrived: Instant::now(),
        };
        self.arrive(app, ctx);
    }
}

impl Handler<Located> for CustomerSession {
    type Result = ();

    /// On arrival: queue for the next poll if the desktop is attached here and present, else
    /// redirect or "no agent". At a re-check of a queued request the same rule applies.
    fn handle(&mut self, msg: Located, ctx: &mut Self::Context) {
        let Some(at) = self.apps.iter().position(|a| a.id == msg.id) else {
            return; // taken by a poll meanwhile
        };
        if self.apps[at].reply.is_closed() {
            self.apps.remove(at);
            return;
        }
        if !self.apps[at].queued {
            // A poll may have come while the store was asked.
            if let Some(poll) = self.take_poll(ctx) {
                let app = self.apps.remove(at).expect("found above");
                self.pair(app, poll, ctx);
                return;
            }
        }
        let here = msg.location.as_ref() == Some(self.relay.here());
        let outcome = match msg.location {
            Some(_) if here && self.present() => {
                self.apps[at].queued = true;
                let id = msg.id;
                ctx.run_later(self.relay.timeouts().client, move |act, ctx| {
                    if act.apps.iter().any(|a| a.id == id) {
                        act.locate(&id, ctx);
                    }
                });
                return;
            }
            Some(location) if !here => ClientOutcome::Redirect(location),
            _ => ClientOutcome::NoAgent,
        };
        let app = self.apps.remove(at).expect("found above");
        let _ = app.reply.send(outcome);
    }
}

impl Handler<Transferred> for CustomerSession {
    type Result = ();

    fn handle(&mut self, msg: Transferred, ctx: &mut Self::Context) {
        let Some(interaction) = self.interactions.get_mut(&msg.id) else {
            return;
        };
        match (&interaction.stage, msg.complete) {
            (Stage::Requesting, true) => {
                let id = msg.id.clone();
                let timer = ctx.run_later(self.relay.timeouts().no_reply, move |act, ctx| {
                    act.reply_timed_out(&id, ctx)
                });
                interaction.stage = Stage::AwaitingReply(timer);
            }
            (Stage::Requesting, false) => {
                let outcome = ClientOutcome::Failed {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    reason: "HTTP 503: Service Unavailable (the desktop's connection closed during the transfer)".to_owned(),
                };
                self.end(&msg.id, Some(outcome), false, ctx);
            }
            // The reply reached the app, or the app went away: either way it is over.
            (Stage::Replying, complete) => self.end(&msg.id, None, complete, ctx),
            (Stage::AwaitingReply(_), _) => {}
        }
    }
}

impl Handler<Reply> for CustomerSession {
    type Result = ();

    fn handle(&mut self, msg: Reply, ctx: &mut Self::Context) {
        if self.retired {
            return self.relay.session(&self.customer).do_send(msg);
        }
        let refuse = |status: StatusCode, reason: String| ReplyVerdict::Refused { status, reason };
        let Some(interaction) = self.interactions.get_mut(&msg.id) else {
            let reason = "HTTP 502: Bad Gateway (No client to reply)".to_owned();
            let _ = msg.verdict.send(refuse(StatusCode::BAD_GATEWAY, reason));
            return;
        };
        if msg.customer != self.customer {
            let reason = format!("Not corresponding ProductID = {}", msg.customer);
            let _ = msg
                .verdict
                .send(refuse(StatusCode::INTERNAL_SERVER_ERROR, reason));
            return;
        }
        if matches!(interaction.stage, Stage::Replying) {
            let reason = "HTTP 501: Not Implemented (RequestID is being replied)".to_owned();
            let _ = msg
                .verdict
                .send(refuse(StatusCode::NOT_IMPLEMENTED, reason));
            return;
        }
        let message = match msg.message {
            Ok(message) => message,
            Err(reason) => {
                // The desktop sent something unusable: it hears why, and the app is not left
                // waiting.
                let failed = ClientOutcome::Failed {
                    status: StatusCode::BAD_GATEWAY,
                    reason: format!(
                        "HTTP 502: Bad Gateway (the desktop's reply was unusable: {reason})"
                    ),
                };
                self.end(&msg.id, Some(failed), false, ctx);
                let _ = msg.verdict.send(refuse(StatusCode::BAD_REQUEST, reason));
                return;
            }
        };
        if let Stage::AwaitingReply(timer) = interaction.stage {
            ctx.cancel_future(timer);
        }
        interaction.stage = Stage::Replying;
        let (delivered_tx, delivered) = oneshot::channel();
        let report = Report {
            session: ctx.address(),
            id: msg.id.clone(),
            delivered: Some(delivered_tx),
        };
        let sent = match interaction.app.take() {
            Some(app) => {
                let id = msg.id.clone();
                let reply = ClientOutcome::Reply {
                    id,
                    message,
                    report,
                };
                app.send(reply).is_ok()
            }
            None => false,
        };
        if sent {
            let _ = msg.verdict.send(ReplyVerdict::Go { delivered });
        } else {
            self.end(&msg.id, None, false, ctx);
            let reason = "HTTP 502: Bad Gateway (No client to reply)".to_owned();
            let _ = msg.verdict.send(refuse(StatusCode::BAD_GATEWAY, reason));
        }
    }
}
