//! Tokio's scheduler benchmark shapes (benches/rt_multi_threaded.rs and benches/spawn.rs of
//! the Tokio repository), timed without Criterion so that they build offline against Debian's
//! tokio package.
//!
//! Usage: swarm-tokio-shapes [--workers N] [--iters K] [--warmup-ms M] [--shapes a,b,...]
//!
//! Prints one CSV line per shape per timed iteration: `tokio,<shape>,<workers>,<ns>`, where
//! <ns> is the wall time of one iteration of the shape as Tokio's bench defines it. Each
//! shape gets its own runtime (as in Tokio's benches), is warmed up for --warmup-ms (at
//! least two iterations), then timed --iters times.
//!
//! threaded_scheduler_spawn runs on a 1-worker runtime whatever --workers says (its workers
//! column is 1); its iteration (one block_on { spawn; await }) is a few microseconds, so it
//! is timed over a batch of SPAWN_BATCH iterations and reported per iteration.
//!
//! spawn_join_latency also runs on a 1-worker runtime: one task spawns an empty task and
//! awaits it, LATENCY_BATCH times in a row, timing the batch itself; reported per
//! spawn+run+join.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::runtime::{self, Runtime};
use tokio::sync::oneshot;

const NUM_SPAWN: usize = 10_000; // spawn_many_local, spawn_many_remote_idle, spawn_many_remote_busy1
const NUM_SPAWN_BUSY2: usize = 1_000; // spawn_many_remote_busy2
const NUM_PINGS: usize = 1_000; // ping_pong
const NUM_YIELD_TASKS: usize = 200; // yield_many
const NUM_YIELDS: usize = 1_000; // yield_many, per task
const CHAIN_DEPTH: usize = 1_000; // chained_spawn
const SPAWN_BATCH: usize = 1_000; // threaded_scheduler_spawn iterations per timed batch
const LATENCY_BATCH: u32 = 20_000; // spawn_join_latency iterations per timed batch

const SHAPES: &[&str] = &[
    "spawn_many_local",
    "spawn_many_remote_idle",
    "spawn_many_remote_busy1",
    "spawn_many_remote_busy2",
    "ping_pong",
    "yield_many",
    "chained_spawn",
    "threaded_scheduler_spawn",
    "spawn_join_latency",
];

struct Config {
    workers: usize,
    iters: usize,
    warmup: Duration,
}

/// Runs `iteration` (which returns its own timed duration) for the warm-up period, then
/// `iters` times, printing one CSV line per timed run.
fn measure(cfg: &Config, shape: &str, workers: usize, mut iteration: impl FnMut() -> Duration) {
    let start = Instant::now();
    let mut n = 0usize;
    while n < 2 || (start.elapsed() < cfg.warmup && n < 10_000) {
        black_box(iteration());
        n += 1;
    }
    for _ in 0..cfg.iters {
        let d = iteration();
        println!("tokio,{},{},{}", shape, workers, d.as_nanos());
    }
}

/// The runtime of rt_multi_threaded.rs: multi-thread, all drivers enabled.
fn rt(workers: usize) -> Runtime {
    runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Busy-waits 10 µs, yielding the thread in the loop.
fn stall() {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(10) {
        std::thread::yield_now();
    }
}

fn spawn_many_local(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    measure(cfg, "spawn_many_local", cfg.workers, || {
        let t = Instant::now();
        rem.store(NUM_SPAWN, Relaxed);
        rt.block_on(async {
            // block_on's thread is not a worker: these go through the inject queue.
            for _ in 0..NUM_SPAWN {
                let tx = tx.clone();
                let rem = rem.clone();
                tokio::spawn(async move {
                    if rem.fetch_sub(1, Relaxed) == 1 {
                        tx.send(()).unwrap();
                    }
                });
            }
            rx.recv().unwrap();
        });
        t.elapsed()
    });
}

/// NUM remote spawns of empty tasks from the bench thread, then block_on awaits them in order.
fn remote_spawn_and_await(rt: &Runtime, num: usize, handles: &mut Vec<tokio::task::JoinHandle<()>>) -> Duration {
    let t = Instant::now();
    let h = rt.handle();
    for _ in 0..num {
        handles.push(h.spawn(async {}));
    }
    rt.block_on(async {
        for jh in handles.drain(..) {
            jh.await.unwrap();
        }
    });
    t.elapsed()
}

fn spawn_many_remote_idle(cfg: &Config) {
    let rt = rt(cfg.workers);
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    measure(cfg, "spawn_many_remote_idle", cfg.workers, || {
        remote_spawn_and_await(&rt, NUM_SPAWN, &mut handles)
    });
}

fn spawn_many_remote_busy1(cfg: &Config) {
    let rt = rt(cfg.workers);
    let mut handles = Vec::with_capacity(NUM_SPAWN);
    let flag = Arc::new(AtomicBool::new(true));
    // 2 × workers background tasks that keep every worker busy.
    for _ in 0..2 * cfg.workers {
        let flag = flag.clone();
        rt.spawn(async move {
            while flag.load(Relaxed) {
                tokio::task::yield_now().await;
                stall();
            }
        });
    }
    measure(cfg, "spawn_many_remote_busy1", cfg.workers, || {
        remote_spawn_and_await(&rt, NUM_SPAWN, &mut handles)
    });
    flag.store(false, Relaxed);
}

fn busy_chain(flag: Arc<AtomicBool>) {
    tokio::spawn(async move {
        if flag.load(Relaxed) {
            stall();
            busy_chain(flag);
        }
    });
}

fn spawn_many_remote_busy2(cfg: &Config) {
    let rt = rt(cfg.workers);
    let mut handles = Vec::with_capacity(NUM_SPAWN_BUSY2);
    let flag = Arc::new(AtomicBool::new(true));
    // One chain per worker: each task stalls, then spawns its successor.
    for _ in 0..cfg.workers {
        let flag = flag.clone();
        rt.spawn(async move { busy_chain(flag) });
    }
    // Tokio before 1.29 has no cap on consecutive LIFO-slot polls: a worker running a chain
    // whose every task spawns its successor never leaves run_task, so with one chain per
    // worker nobody takes the remote spawns from the inject queue and the iteration never
    // ends (a livelock). A watchdog ends the chains after WATCHDOG and the shape is
    // reported as `livelock` instead of a time.
    const WATCHDOG: Duration = Duration::from_secs(2);
    let deadline = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let stalled = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let dog = {
        let (deadline, stalled, stop, flag) = (deadline.clone(), stalled.clone(), stop.clone(), flag.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                if let Some(d) = *deadline.lock().unwrap() {
                    if Instant::now() > d && !stalled.load(Relaxed) {
                        stalled.store(true, Relaxed);
                        flag.store(false, Relaxed);
                    }
                }
            }
        })
    };
    let mut iteration = || {
        *deadline.lock().unwrap() = Some(Instant::now() + WATCHDOG);
        let d = remote_spawn_and_await(&rt, NUM_SPAWN_BUSY2, &mut handles);
        *deadline.lock().unwrap() = None;
        d
    };
    let start = Instant::now();
    let mut n = 0usize;
    while !stalled.load(Relaxed) && (n < 2 || (start.elapsed() < cfg.warmup && n < 10_000)) {
        black_box(iteration());
        n += 1;
    }
    for _ in 0..cfg.iters {
        if stalled.load(Relaxed) {
            break;
        }
        let d = iteration();
        if !stalled.load(Relaxed) {
            println!("tokio,spawn_many_remote_busy2,{},{}", cfg.workers, d.as_nanos());
        }
    }
    if stalled.load(Relaxed) {
        eprintln!(
            "tokio: spawn_many_remote_busy2 made no progress for {:?} (LIFO-slot livelock of tokio < 1.29); chains stopped",
            WATCHDOG
        );
        println!("tokio,spawn_many_remote_busy2,{},livelock", cfg.workers);
    }
    flag.store(false, Relaxed);
    stop.store(true, Relaxed);
    dog.join().unwrap();
}

fn ping_pong(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(1000);
    let rem = Arc::new(AtomicUsize::new(0));
    measure(cfg, "ping_pong", cfg.workers, || {
        let t = Instant::now();
        rem.store(NUM_PINGS, Relaxed);
        rt.block_on(async {
            let tx = tx.clone();
            let rem = rem.clone();
            tokio::spawn(async move {
                for _ in 0..NUM_PINGS {
                    let tx = tx.clone();
                    let rem = rem.clone();
                    tokio::spawn(async move {
                        let (ping_tx, ping_rx) = oneshot::channel::<()>();
                        let (pong_tx, pong_rx) = oneshot::channel::<()>();
                        tokio::spawn(async move {
                            ping_rx.await.unwrap();
                            pong_tx.send(()).unwrap();
                        });
                        ping_tx.send(()).unwrap();
                        pong_rx.await.unwrap();
                        if rem.fetch_sub(1, Relaxed) == 1 {
                            tx.send(()).unwrap();
                        }
                    });
                }
            });
            rx.recv().unwrap();
        });
        t.elapsed()
    });
}

fn yield_many(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(NUM_YIELD_TASKS);
    measure(cfg, "yield_many", cfg.workers, || {
        let t = Instant::now();
        for _ in 0..NUM_YIELD_TASKS {
            let tx = tx.clone();
            rt.spawn(async move {
                for _ in 0..NUM_YIELDS {
                    tokio::task::yield_now().await;
                }
                tx.send(()).unwrap();
            });
        }
        for _ in 0..NUM_YIELD_TASKS {
            rx.recv().unwrap();
        }
        t.elapsed()
    });
}

fn chain_link(done: mpsc::SyncSender<()>, n: usize) {
    if n == 0 {
        done.send(()).unwrap();
    } else {
        tokio::spawn(async move { chain_link(done, n - 1) });
    }
}

fn chained_spawn(cfg: &Config) {
    let rt = rt(cfg.workers);
    let (tx, rx) = mpsc::sync_channel::<()>(1000);
    measure(cfg, "chained_spawn", cfg.workers, || {
        let t = Instant::now();
        rt.block_on(async {
            let tx = tx.clone();
            tokio::spawn(async move { chain_link(tx, CHAIN_DEPTH) });
            rx.recv().unwrap();
        });
        t.elapsed()
    });
}

/// spawn.rs's work(): compute, yield once, return (each task is polled twice).
async fn work() -> usize {
    let val = 1 + 1;
    tokio::task::yield_now().await;
    black_box(val)
}

fn threaded_scheduler_spawn(cfg: &Config) {
    // spawn.rs: multi-thread runtime with one worker and no drivers.
    let rt = runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    measure(cfg, "threaded_scheduler_spawn", 1, || {
        let t = Instant::now();
        for _ in 0..SPAWN_BATCH {
            rt.block_on(async {
                let h = tokio::spawn(work());
                assert_eq!(h.await.unwrap(), 2);
            });
        }
        t.elapsed() / SPAWN_BATCH as u32
    });
}

fn spawn_join_latency(cfg: &Config) {
    // Same runtime as rt(), with one worker: the spawner, runner and joiner are one thread.
    let rt = rt(1);
    measure(cfg, "spawn_join_latency", 1, || {
        let h = rt.spawn(async {
            let t = Instant::now();
            for _ in 0..LATENCY_BATCH {
                tokio::spawn(async {}).await.unwrap();
            }
            t.elapsed() / LATENCY_BATCH
        });
        rt.block_on(h).unwrap()
    });
}

fn usage() -> ! {
    eprintln!("usage: swarm-tokio-shapes [--workers N] [--iters K] [--warmup-ms M] [--shapes a,b,...]");
    eprintln!("shapes: {}", SHAPES.join(","));
    std::process::exit(2);
}

fn main() {
    let mut cfg = Config {
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        iters: 10,
        warmup: Duration::from_millis(200),
    };
    let mut shapes: Vec<String> = SHAPES.iter().map(|s| s.to_string()).collect();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--workers" => cfg.workers = val().parse().unwrap_or_else(|_| usage()),
            "--iters" => cfg.iters = val().parse().unwrap_or_else(|_| usage()),
            "--warmup-ms" => cfg.warmup = Duration::from_millis(val().parse().unwrap_or_else(|_| usage())),
            "--shapes" => shapes = val().split(',').map(|s| s.to_string()).collect(),
            _ => usage(),
        }
    }
    if cfg.workers == 0 {
        usage();
    }
    for s in &shapes {
        match s.as_str() {
            "spawn_many_local" => spawn_many_local(&cfg),
            "spawn_many_remote_idle" => spawn_many_remote_idle(&cfg),
            "spawn_many_remote_busy1" => spawn_many_remote_busy1(&cfg),
            "spawn_many_remote_busy2" => spawn_many_remote_busy2(&cfg),
            "ping_pong" => ping_pong(&cfg),
            "yield_many" => yield_many(&cfg),
            "chained_spawn" => chained_spawn(&cfg),
            "threaded_scheduler_spawn" => threaded_scheduler_spawn(&cfg),
            "spawn_join_latency" => spawn_join_latency(&cfg),
            _ => {
                eprintln!("unknown shape: {}", s);
                usage();
            }
        }
    }
}
