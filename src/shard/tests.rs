//! The shard's tests: waiters, deliveries and their put-backs, on the embedded store.

use super::delivery::ANSWER_WAIT_LIMIT;
use super::*;
use crate::model::{DeliveryState, Meta, Namespace, NewTransaction, Priority, TxId};
use crate::store::Queues;
use crate::store::memory::MemoryStore;

/// A waiter whose client vanished just as its messages arrived: it drops what it gets.
struct Vanishing;

impl Actor for Vanishing {
    type Context = Context<Self>;
}

impl Handler<WaiterNotice> for Vanishing {
    type Result = ();
    fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
        drop(notice);
    }
}

/// A waiter that keeps (commits) what it gets.
struct Keeping(tokio::sync::mpsc::UnboundedSender<Vec<Message>>);

impl Actor for Keeping {
    type Context = Context<Self>;
}

impl Handler<WaiterNotice> for Keeping {
    type Result = ();
    fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
        if let WaiterNotice::Deliver(d) = notice {
            let _ = self.0.send(d.commit());
        }
    }
}

/// A new high-priority message with `payload` for `queue`, living a minute.
fn message_in(queue: &QueueName, payload: &str) -> NewTransaction {
    NewTransaction {
        id: TxId::generate(),
        priority: Priority::High,
        queues: vec![queue.id().to_owned()],
        meta: Meta::from([("payload".to_owned(), payload.to_owned())]),
        expires_at: unix_now() + 60,
        once: None,
    }
}

async fn setup(messages: &[&str]) -> (Arc<MemoryStore>, Addr<ShardActor>, QueueName, Vec<TxId>) {
    let store = Arc::new(MemoryStore::new(1));
    let shard = ShardActor::new(
        0,
        store.clone(),
        Duration::from_secs(3600),
        Callbacks::disabled(),
    )
    .start();
    let queue = Namespace::default().queue("q");
    let mut ids = Vec::new();
    for payload in messages {
        let tx = message_in(&queue, payload);
        let id = tx.id.clone();
        let push = Push {
            tx: Arc::new(tx),
            queues: vec![queue.clone()],
            create: true,
            answered: None,
        };
        shard.send(push).await.unwrap().unwrap();
        ids.push(id);
    }
    (store, shard, queue, ids)
}

fn waiter(id: u64, max: usize, notify: Recipient<WaiterNotice>) -> Waiter {
    Waiter {
        id,
        max,
        mark: Mark::Delivered,
        subscription: false,
        notify,
    }
}

#[actix::test]
async fn an_abandoned_delivery_goes_back_to_the_head_as_pending() {
    let (store, shard, queue, ids) = setup(&["a", "b", "c"]).await;
    let vanishing = Vanishing.start().recipient();
    shard.do_send(Wait {
        queue: queue.clone(),
        waiter: waiter(1, 2, vanishing),
    });
    actix::clock::sleep(Duration::from_millis(100)).await;

    let order: Vec<TxId> = queued(&store, &queue).await;
    assert_eq!(order, ids, "back at the head, in order");
    for id in &ids {
        assert_eq!(store.states(id).await.unwrap()["q"], DeliveryState::Pending);
    }
    assert!(!store.queue_info(0, &queue, 10).await.unwrap().blocked);
}

#[actix::test]
async fn messages_put_back_go_to_the_next_waiter() {
    let (store, shard, queue, ids) = setup(&["a"]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The first waiter vanishes; the second must still get the message.
    shard.do_send(Wait {
        queue: queue.clone(),
        waiter: waiter(1, 1, Vanishing.start().recipient()),
    });
    actix::clock::sleep(Duration::from_millis(50)).await;
    shard.do_send(Wait {
        queue: queue.clone(),
        waiter: waiter(2, 1, Keeping(tx).start().recipient()),
    });
    let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.iter().map(|m| m.tx.clone()).collect::<Vec<_>>(), ids);
    assert_eq!(
        store.states(&ids[0]).await.unwrap()["q"],
        DeliveryState::Delivered
    );
    assert!(store.peek(0, &queue, 10).await.unwrap().is_empty());
}

#[actix::test]
async fn release_answers_waiters_and_refuses_new_ones() {
    let (_store, shard, queue, _ids) = setup(&[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    struct Recorder(tokio::sync::mpsc::UnboundedSender<&'static str>);
    impl Actor for Recorder {
        type Context = Context<Self>;
    }
    impl Handler<WaiterNotice> for Recorder {
        type Result = ();
        fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
            let _ = self.0.send(match notice {
                WaiterNotice::Release => "release",
                _ => "other",
            });
        }
    }
    shard.do_send(Wait {
        queue: queue.clone(),
        waiter: waiter(1, 1, Recorder(tx.clone()).start().recipient()),
    });
    actix::clock::sleep(Duration::from_millis(50)).await;
    shard.send(Closing(true)).await.unwrap();
    shard.do_send(Wait {
        queue,
        waiter: waiter(2, 1, Recorder(tx).start().recipient()),
    });
    for _ in 0..2 {
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap();
        assert_eq!(got, Some("release"));
    }
}

#[actix::test]
async fn waiters_that_leave_leave_no_trace() {
    let (store, shard, queue, _ids) = setup(&[]).await;
    let keeper = Keeping(tokio::sync::mpsc::unbounded_channel().0).start();
    for id in 1..=3 {
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(id, 1, keeper.clone().recipient()),
        });
    }
    actix::clock::sleep(Duration::from_millis(50)).await;
    assert!(store.queue_info(0, &queue, 1).await.unwrap().blocked);
    for id in 1..=3 {
        shard.do_send(CancelWait {
            queue: queue.clone(),
            id,
        });
    }
    actix::clock::sleep(Duration::from_millis(50)).await;
    assert!(!store.queue_info(0, &queue, 1).await.unwrap().blocked);
    assert_eq!(count_tracked(&shard).await, 0);
}

#[actix::test]
async fn a_waiter_whose_session_is_gone_is_not_counted_as_blocked() {
    /// A session that ended before the shard got to it.
    struct Gone;
    impl Actor for Gone {
        type Context = Context<Self>;
        fn started(&mut self, ctx: &mut Self::Context) {
            ctx.stop();
        }
    }
    impl Handler<WaiterNotice> for Gone {
        type Result = ();
        fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
            drop(notice);
        }
    }
    let (store, shard, queue, _ids) = setup(&[]).await;
    let gone = Gone.start();
    actix::clock::sleep(Duration::from_millis(20)).await;
    shard.do_send(Wait {
        queue: queue.clone(),
        waiter: waiter(1, 1, gone.recipient()),
    });
    actix::clock::sleep(Duration::from_millis(100)).await;
    assert!(!store.queue_info(0, &queue, 1).await.unwrap().blocked);
    assert_eq!(count_tracked(&shard).await, 0);
}

#[actix::test]
async fn no_waiter_gets_more_than_its_max() {
    let (store, shard, queue, _) = setup(&[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for id in 1..=2 {
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(id, 1, Keeping(tx.clone()).start().recipient()),
        });
    }
    actix::clock::sleep(Duration::from_millis(50)).await;
    // Three messages reach the store behind the shard's back, then are taken in one go, as
    // a take sized for a waiter that has since left would.
    let ids = stored_behind_its_back(&store, &queue, &["a", "b", "c"]).await;
    let take = TakeAndHandOver {
        queue: queue.clone(),
        max: 3,
        mark: Mark::Delivered,
    };
    shard.send(take).await.unwrap();
    for expected in [&ids[0], &ids[1]] {
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            got.iter().map(|m| &m.tx).collect::<Vec<_>>(),
            [expected],
            "one each"
        );
    }
    actix::clock::sleep(Duration::from_millis(50)).await;
    let left: Vec<TxId> = queued(&store, &queue).await;
    assert_eq!(left, [ids[2].clone()], "the third went back");
    assert_eq!(
        store.states(&ids[2]).await.unwrap()["q"],
        DeliveryState::Pending
    );
}

/// Stores messages in `queue` without telling the shard; returns their ids.
async fn stored_behind_its_back(
    store: &MemoryStore,
    queue: &QueueName,
    payloads: &[&str],
) -> Vec<TxId> {
    let mut ids = Vec::new();
    for payload in payloads {
        let tx = message_in(queue, payload);
        store
            .provision(0, &tx, std::slice::from_ref(queue))
            .await
            .unwrap();
        ids.push(tx.id);
    }
    ids
}

/// Takes up to `max` messages marked `mark` and hands them over, as a take sized and marked
/// for a waiter that has since left would.
#[derive(Message)]
#[rtype(result = "()")]
struct TakeAndHandOver {
    queue: QueueName,
    max: usize,
    mark: Mark,
}

impl Handler<TakeAndHandOver> for ShardActor {
    type Result = ResponseActFuture<Self, ()>;
    fn handle(&mut self, msg: TakeAndHandOver, _ctx: &mut Self::Context) -> Self::Result {
        let store = Arc::clone(&self.store);
        let TakeAndHandOver { queue, max, mark } = msg;
        let q = queue.clone();
        let take = async move {
            let accounting = WaitAccounting::default();
            store
                .take(0, &q, max, mark, None, accounting)
                .await
                .unwrap()
        };
        Box::pin(take.into_actor(self).map(move |taken, act, ctx| {
            let delivery = act.delivery(&queue, taken, mark, ctx);
            act.hand_over(&queue, delivery);
        }))
    }
}

#[actix::test]
async fn a_take_goes_only_to_a_waiter_of_its_mode() {
    let reliable = Mark::Unacked {
        ack_within: Duration::from_millis(200),
    };
    for (taken_as, waiting_as) in [(reliable, Mark::Delivered), (Mark::Delivered, reliable)] {
        let (store, shard, queue, _) = setup(&[]).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let waiting = Waiter {
            mark: waiting_as,
            ..waiter(1, 1, Keeping(tx).start().recipient())
        };
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiting,
        });
        actix::clock::sleep(Duration::from_millis(50)).await;
        let ids = stored_behind_its_back(&store, &queue, &["a"]).await;
        let take = TakeAndHandOver {
            queue: queue.clone(),
            max: 1,
            mark: taken_as,
        };
        shard.send(take).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        let got: Vec<TxId> = got.unwrap().unwrap().into_iter().map(|m| m.tx).collect();
        assert_eq!(got, ids, "{waiting_as:?}: the waiter still gets it");
        let state = store.states(&ids[0]).await.unwrap()["q"];
        assert_eq!(state, waiting_as.state(), "recorded in the waiter's mode");
        // Past the acknowledgement time and a sweep: only a reliable take comes back.
        let started = std::time::Instant::now();
        while queued(&store, &queue).await.is_empty() && started.elapsed().as_secs() < 5 {
            actix::clock::sleep(UNACKED_SWEEP / 5).await;
        }
        let back = queued(&store, &queue).await;
        match waiting_as {
            Mark::Delivered => assert!(back.is_empty(), "a plain pop's message came back"),
            Mark::Unacked { .. } => assert_eq!(back, ids, "an unacked message stayed out"),
        }
    }
}

/// Pushes one message into `queue` with the gate its producer's answer would open.
async fn push_answered(shard: &Addr<ShardActor>, queue: &QueueName, answered: Answered) {
    let tx = message_in(queue, "answered");
    let push = Push {
        tx: Arc::new(tx),
        queues: vec![queue.clone()],
        create: true,
        answered: Some(answered),
    };
    shard.send(push).await.unwrap().unwrap();
}

/// A waiter that hands on what it gets, uncommitted.
struct Forwarding(tokio::sync::mpsc::UnboundedSender<Delivery>);

impl Actor for Forwarding {
    type Context = Context<Self>;
}

impl Handler<WaiterNotice> for Forwarding {
    type Result = ();
    fn handle(&mut self, notice: WaiterNotice, _ctx: &mut Self::Context) {
        if let WaiterNotice::Deliver(d) = notice {
            let _ = self.0.send(d);
        }
    }
}

#[actix::test]
async fn a_delivery_is_answered_once_its_producer_is() {
    let (_store, shard, queue, _) = setup(&[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Long enough to tell "not yet" on any machine; what must happen may take longer.
    let short = Duration::from_millis(200);
    let ample = Duration::from_secs(5);
    for (id, keep_token) in [(1, false), (2, true)] {
        shard.do_send(Wait {
            queue: queue.clone(),
            waiter: waiter(id, 1, Forwarding(tx.clone()).start().recipient()),
        });
        let (answering, answered) = crate::model::answer_pair();
        push_answered(&shard, &queue, answered).await;
        let delivery = tokio::time::timeout(ample, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(delivery.len(), 1);
        let waiting = tokio::time::timeout(short, delivery.answered()).await;
        assert!(waiting.is_err(), "answered before the producer was");
        if keep_token {
            // An answer never written holds the message back for a bounded time only.
            let bound = tokio::time::timeout(ANSWER_WAIT_LIMIT + ample, delivery.answered());
            assert!(bound.await.is_ok(), "held past the limit");
            drop(answering);
        } else {
            drop(answering);
            let answered = tokio::time::timeout(ample, delivery.answered()).await;
            assert!(answered.is_ok(), "not answered once the producer was");
        }
        // A message taken after its producer was answered carries no gate.
        delivery.commit();
    }
}

/// The ids in `queue`, head first.
async fn queued(store: &MemoryStore, queue: &QueueName) -> Vec<TxId> {
    store
        .peek(0, queue, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.tx)
        .collect()
}

/// Asks the shard how many queues it tracks.
async fn count_tracked(shard: &Addr<ShardActor>) -> usize {
    #[derive(Message)]
    #[rtype(result = "usize")]
    struct Tracked;
    impl Handler<Tracked> for ShardActor {
        type Result = usize;
        fn handle(&mut self, _: Tracked, _ctx: &mut Self::Context) -> usize {
            self.tracked_queues()
        }
    }
    shard.send(Tracked).await.unwrap()
}
