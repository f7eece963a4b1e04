//! The public benchmark's Tokio side: the same shapes as bench/public_shapes.cpp, written as a
//! Tokio user writes them (multi-thread runtime, enable_all, tokio::spawn, JoinHandle.await,
//! yield_now, oneshot channels for ping_pong, time::sleep).
//!
//! Usage: swarm-tokio-public [--workers N] [--iters K] [--warmup-ms M] [--shapes a,b,...]
//!        swarm-tokio-public --scale [--workers N] [--tasks T]
//!
//! Shapes named ct_* run on Tokio's current-thread runtime (Builder::new_current_thread,
//! enable_all), driven by block_on on the bench thread, as public_shapes runs them on swarm's
//! current-thread flavour and on an io_context(1) run by the bench thread.
//!
//! Prints `tokio,<shape>,<workers>,<value>,<unit>` lines, as public_shapes does.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::runtime::{self, Runtime};
use tokio::sync::oneshot;

const NUM_SPAWN: usize = 10_000;
const NUM_PINGS: usize = 1_000;
const NUM_YIELD_TASKS: usize = 200;
const NUM_YIELDS: usize = 1_000;
const NUM_CT_YIELD_TASKS: usize = 100;
const CHAIN_DEPTH: usize = 1_000;
const SKYNET_SIZE: u64 = 1_000_000;
const OP_BATCH: u32 = 20_000;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Config {
    workers: usize,
    iters: usize,
    warmup: Duration,
}

fn measure(cfg: &Config, shape: &str, workers: usize, mut iteration: impl FnMut() -> Duration) {
    let start = Instant::now();
    let mut n = 0usize;
    while n < 2 || (start.elapsed() < cfg.warmup && n < 10_000) {
        black_box(iteration());
        n += 1;
    }
    for _ in 0..cfg.iters {
        let d = iteration();
        println!("tokio,{},{},{},ns", shape, workers, d.as_nanos());
    }
}

fn rt(workers: usize) -> Runtime {
    runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap()
}

fn current_thread_rt() -> Runtime {
    runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn stall() {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(10) {
        std::thread::yield_now();
    }
}

fn recv_bounded(rx: &mpsc::Receiver<()>, what: &str) {
    if rx.recv_timeout(TIMEOUT).is_err() {
        eprintln!("swarm-tokio-public: {} did not finish in {:?}", what, TIMEOUT);
        std::process::exit(3);
    }
}

fn spawn_many_local(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    measure(cfg, "spawn_many_local", cfg.workers, || {
        let t = Instant::now();
        rem.store(NUM_SPAWN, Relaxed);
        let h = rt.handle();
        for _ in 0..NUM_SPAWN {
            let tx = tx.clone();
            let rem = rem.clone();
            h.spawn(async move {
                if rem.fetch_sub(1, Relaxed) == 1 {
                    tx.send(()).unwrap();
                }
            });
        }
        recv_bounded(&rx, "spawn_many_local");
        t.elapsed()
    });
}

fn remote_spawn_and_await(rt: &Runtime) -> Duration {
    let t = Instant::now();
    let h = rt.handle();
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    for _ in 0..NUM_SPAWN {
        handles.push(h.spawn(async {}));
    }
    rt.block_on(async {
        for jh in handles {
            jh.await.unwrap();
        }
    });
    t.elapsed()
}

fn spawn_many_remote_idle(cfg: &Config) {
    let rt = rt(cfg.workers);
    measure(cfg, "spawn_many_remote_idle", cfg.workers, || remote_spawn_and_await(&rt));
}

fn spawn_many_remote_busy(cfg: &Config) {
    let rt = rt(cfg.workers);
    let flag = Arc::new(AtomicBool::new(true));
    for _ in 0..2 * cfg.workers {
        let flag = flag.clone();
        rt.spawn(async move {
            while flag.load(Relaxed) {
                tokio::task::yield_now().await;
                stall();
            }
        });
    }
    measure(cfg, "spawn_many_remote_busy", cfg.workers, || remote_spawn_and_await(&rt));
    flag.store(false, Relaxed);
}

fn ping_pong(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    measure(cfg, "ping_pong", cfg.workers, || {
        let t = Instant::now();
        rem.store(NUM_PINGS, Relaxed);
        let (tx, rem) = (tx.clone(), rem.clone());
        rt.spawn(async move {
            for _ in 0..NUM_PINGS {
                let (tx, rem) = (tx.clone(), rem.clone());
                tokio::spawn(async move {
                    let (tx1, rx1) = oneshot::channel::<()>();
                    let (tx2, rx2) = oneshot::channel::<()>();
                    tokio::spawn(async move {
                        rx1.await.unwrap();
                        tx2.send(()).unwrap();
                    });
                    tx1.send(()).unwrap();
                    rx2.await.unwrap();
                    if rem.fetch_sub(1, Relaxed) == 1 {
                        tx.send(()).unwrap();
                    }
                });
            }
        });
        recv_bounded(&rx, "ping_pong");
        t.elapsed()
    });
}

fn yield_many(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(NUM_YIELD_TASKS);
    let rem = Arc::new(AtomicUsize::new(0));
    measure(cfg, "yield_many", cfg.workers, || {
        let t = Instant::now();
        rem.store(NUM_YIELD_TASKS, Relaxed);
        for _ in 0..NUM_YIELD_TASKS {
            let (tx, rem) = (tx.clone(), rem.clone());
            rt.spawn(async move {
                for _ in 0..NUM_YIELDS {
                    tokio::task::yield_now().await;
                }
                if rem.fetch_sub(1, Relaxed) == 1 {
                    tx.send(()).unwrap();
                }
            });
        }
        recv_bounded(&rx, "yield_many");
        t.elapsed()
    });
}

fn chain(n: usize, tx: mpsc::SyncSender<()>) {
    tokio::spawn(async move {
        if n == 0 {
            tx.send(()).unwrap();
        } else {
            chain(n - 1, tx);
        }
    });
}

fn chained_spawn(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(1000);
    measure(cfg, "chained_spawn", cfg.workers, || {
        let t = Instant::now();
        let tx = tx.clone();
        rt.spawn(async move { chain(CHAIN_DEPTH, tx) });
        recv_bounded(&rx, "chained_spawn");
        t.elapsed()
    });
}

fn skynet_node(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let children: Vec<_> = (0..10).map(|i| tokio::spawn(skynet_node(num + i * sub, sub))).collect();
        let mut sum = 0;
        for c in children {
            sum += c.await.unwrap();
        }
        sum
    })
}

fn skynet(cfg: &Config) {
    let rt = rt(cfg.workers);
    let expect = SKYNET_SIZE * (SKYNET_SIZE - 1) / 2;
    let c = Config { workers: cfg.workers, iters: cfg.iters, warmup: Duration::ZERO };
    measure(&c, "skynet", cfg.workers, || {
        let t = Instant::now();
        let sum = rt.block_on(async { tokio::spawn(skynet_node(0, SKYNET_SIZE)).await.unwrap() });
        let d = t.elapsed();
        assert_eq!(sum, expect);
        d
    });
}

/// One task on the current-thread runtime spawns `tasks` tasks running `child`, then joins each.
fn one_thread_fork_join<F, Fut>(cfg: &Config, shape: &str, tasks: usize, child: F)
where
    F: Fn() -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = current_thread_rt();
    measure(cfg, shape, 1, || {
        let t = Instant::now();
        rt.block_on(async move {
            let hs: Vec<_> = (0..tasks).map(|_| tokio::spawn(child())).collect();
            for h in hs {
                h.await.unwrap();
            }
        });
        t.elapsed()
    });
}

/// A batch of OP_BATCH operations inside one task on a 1-worker runtime, timed by the task.
fn per_op<F, Fut>(cfg: &Config, shape: &str, body: F)
where
    F: Fn(u32) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    per_op_n(cfg, shape, OP_BATCH, body)
}

fn per_op_n<F, Fut>(cfg: &Config, shape: &str, batch: u32, body: F)
where
    F: Fn(u32) -> Fut + Send + Sync + Copy + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = if shape.starts_with("ct_") { current_thread_rt() } else { rt(1) };
    measure(cfg, shape, 1, || {
        let ns = rt.block_on(async move {
            tokio::spawn(async move {
                let t = Instant::now();
                body(batch).await;
                t.elapsed()
            })
            .await
            .unwrap()
        });
        ns / batch
    });
}

fn op_shape(cfg: &Config, s: &str) {
    match s {
        "op_spawn_await" | "ct_spawn_await" => per_op(cfg, s, |n| async move {
            for _ in 0..n {
                tokio::spawn(async {}).await.unwrap();
            }
        }),
        "op_yield_now" | "ct_yield_now" => per_op(cfg, s, |n| async move {
            for _ in 0..n {
                tokio::task::yield_now().await;
            }
        }),
        // Tokio has no post: its nearest is a detached spawn. Time until the last has run.
        "op_post" => per_op(cfg, s, |n| async move {
            let left = Arc::new(AtomicUsize::new(n as usize));
            let (tx, rx) = oneshot::channel::<()>();
            let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
            for _ in 0..n {
                let (left, tx) = (left.clone(), tx.clone());
                tokio::spawn(async move {
                    if left.fetch_sub(1, Relaxed) == 1 {
                        let _ = tx.lock().unwrap().take().unwrap().send(());
                    }
                });
            }
            rx.await.unwrap();
        }),
        "op_join_use_awaitable" => per_op(cfg, s, |n| async move {
            for _ in 0..n {
                tokio::spawn(async {}).await.unwrap();
            }
        }),
        "op_abort_join" => per_op(cfg, s, |n| async move {
            for _ in 0..n {
                let jh = tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
                jh.abort();
                assert!(jh.await.unwrap_err().is_cancelled());
            }
        }),
        // Tokio rounds a zero sleep up to its next 1 ms tick: a smaller batch keeps it bounded.
        "op_timer_zero" => per_op_n(cfg, s, 200, |n| async move {
            for _ in 0..n {
                tokio::time::sleep(Duration::ZERO).await;
            }
        }),
        // callable spawns and callback joins have no Tokio form
        _ => {}
    }
}

fn resident_bytes() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0
}

fn scale(workers: usize, tasks: usize) {
    let rt = rt(workers);
    let waiting = Arc::new(AtomicUsize::new(0));
    let rss0 = resident_bytes();
    let t0 = Instant::now();
    for _ in 0..tasks {
        let waiting = waiting.clone();
        rt.spawn(async move {
            let sleep = tokio::time::sleep(Duration::from_secs(3600));
            waiting.fetch_add(1, Relaxed);
            sleep.await;
        });
    }
    while waiting.load(Relaxed) < tasks && t0.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(1));
    }
    let spawn = t0.elapsed();
    if waiting.load(Relaxed) < tasks {
        eprintln!("swarm-tokio-public: scale: not all tasks waiting after {:?}", TIMEOUT);
        std::process::exit(3);
    }
    std::thread::sleep(Duration::from_millis(100));
    let rss1 = resident_bytes();
    let t1 = Instant::now();
    drop(rt);
    let shutdown = t1.elapsed();
    println!("tokio,scale_bytes_per_task,{},{:.0},bytes", workers, (rss1 - rss0) / tasks as f64);
    println!("tokio,scale_spawn_all_waiting,{},{},ns", workers, spawn.as_nanos());
    println!("tokio,scale_shutdown,{},{},ns", workers, shutdown.as_nanos());
}

fn usage() -> ! {
    eprintln!("usage: swarm-tokio-public [--workers N] [--iters K] [--warmup-ms M] [--shapes a,b,...] [--scale] [--tasks T]");
    std::process::exit(2);
}

fn main() {
    let mut cfg = Config {
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        iters: 10,
        warmup: Duration::from_millis(200),
    };
    let mut shapes: Vec<String> = "spawn_many_local,spawn_many_remote_idle,spawn_many_remote_busy,ping_pong,\
yield_many,chained_spawn,skynet,op_spawn_await,op_yield_now,op_post,op_join_use_awaitable,op_abort_join,op_timer_zero,\
ct_spawn_await,ct_yield_now,ct_spawn_join,ct_yield_many"
        .split(',')
        .map(|s| s.to_string())
        .collect();
    let mut do_scale = false;
    let mut tasks = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--scale" {
            do_scale = true;
            continue;
        }
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--workers" => cfg.workers = val().parse().unwrap_or_else(|_| usage()),
            "--iters" => cfg.iters = val().parse().unwrap_or_else(|_| usage()),
            "--warmup-ms" => cfg.warmup = Duration::from_millis(val().parse().unwrap_or_else(|_| usage())),
            "--shapes" => shapes = val().split(',').map(|s| s.to_string()).collect(),
            "--tasks" => tasks = val().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if cfg.workers == 0 || tasks == 0 {
        usage();
    }
    if do_scale {
        scale(cfg.workers, tasks);
        return;
    }
    for s in &shapes {
        match s.as_str() {
            "spawn_many_local" => spawn_many_local(&cfg),
            "spawn_many_remote_idle" => spawn_many_remote_idle(&cfg),
            "spawn_many_remote_busy" => spawn_many_remote_busy(&cfg),
            "ping_pong" => ping_pong(&cfg),
            "yield_many" => yield_many(&cfg),
            "chained_spawn" => chained_spawn(&cfg),
            "skynet" => skynet(&cfg),
            "ct_spawn_join" => one_thread_fork_join(&cfg, s, NUM_SPAWN, || async {}),
            "ct_yield_many" => one_thread_fork_join(&cfg, s, NUM_CT_YIELD_TASKS, || async {
                for _ in 0..NUM_YIELDS {
                    tokio::task::yield_now().await;
                }
            }),
            s if s.starts_with("op_") || s.starts_with("ct_") => op_shape(&cfg, s),
            _ => {
                eprintln!("unknown shape: {}", s);
                usage();
            }
        }
    }
}
