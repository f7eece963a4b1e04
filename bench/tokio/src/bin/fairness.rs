//! The fairness benchmark's Tokio side: the same loads and probes as bench/fairness.cpp,
//! written as a Tokio user writes them (multi-thread runtime, enable_all).
//!
//! Usage: swarm-tokio-fairness [--workers N] [--loads none,yield,budget,chain] [--samples S]
//!
//! Loads: yield = loop { compute 20 us; yield_now }; budget = loop { compute 1 us; acquire a
//! permit of a semaphore that always has one } (each acquire spends coop budget, so the task
//! is forced to yield every 128); chain = each task computes 20 us, spawns its successor and
//! ends. Probes: a detached `Handle::spawn` from the bench thread (Tokio has no post), a task
//! sleeping until now + 1 ms again and again (Tokio's timer rounds up to its 1 ms tick, so
//! its lateness has a floor of up to 1 ms), and a task accepting loopback connections.
//! Prints `tokio,<load>,<workers>,<metric>,<value>,<unit>` lines, as fairness does; a probe
//! whose sample did not run within 2 s (starved) reports -1.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::runtime::{self, Runtime};
use tokio::sync::Semaphore;

const WAIT_BOUND: Duration = Duration::from_secs(20);
// A probe whose sample has not run after this long is reported as starved (-1): Tokio's
// workers can stay in a spawn chain's LIFO slot and never look at the inject queue.
const SAMPLE_BOUND: Duration = Duration::from_secs(2);
const PHASE_BOUND: Duration = Duration::from_secs(5);
const WARM_UP: Duration = Duration::from_millis(100);
const LANE_COMPUTE: Duration = Duration::from_micros(20);
const BUDGET_COMPUTE: Duration = Duration::from_micros(1);
const TIMER_PERIOD: Duration = Duration::from_millis(1);

fn fail(what: &str) -> ! {
    eprintln!("swarm-tokio-fairness: {}", what);
    let _ = std::io::stdout().flush();
    std::process::exit(3);
}

fn compute(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {}
}

#[repr(align(64))]
struct LaneCounter(AtomicU64);

struct LoadState {
    run: AtomicBool,
    live: AtomicUsize,
    count: Vec<LaneCounter>,
}

impl LoadState {
    fn total(&self) -> u64 {
        self.count.iter().map(|c| c.0.load(Relaxed)).sum()
    }
}

fn link(s: Arc<LoadState>, lane: usize) {
    tokio::spawn(async move {
        compute(LANE_COMPUTE);
        s.count[lane].0.fetch_add(1, Relaxed);
        if s.run.load(Relaxed) {
            link(s, lane);
        } else {
            s.live.fetch_sub(1, Relaxed);
        }
    });
}

fn start_load(rt: &Runtime, load: &str, s: &Arc<LoadState>, lanes: usize) {
    if load == "none" {
        return;
    }
    s.live.store(lanes, Relaxed);
    for lane in 0..lanes {
        let s = s.clone();
        match load {
            "yield" => {
                rt.spawn(async move {
                    while s.run.load(Relaxed) {
                        compute(LANE_COMPUTE);
                        s.count[lane].0.fetch_add(1, Relaxed);
                        tokio::task::yield_now().await;
                    }
                    s.live.fetch_sub(1, Relaxed);
                });
            }
            "budget" => {
                rt.spawn(async move {
                    let sem = Semaphore::new(1);
                    while s.run.load(Relaxed) {
                        compute(BUDGET_COMPUTE);
                        s.count[lane].0.fetch_add(1, Relaxed);
                        drop(sem.acquire().await.unwrap());
                    }
                    s.live.fetch_sub(1, Relaxed);
                });
            }
            "chain" => {
                rt.spawn(async move { link(s, lane) });
            }
            _ => fail("unknown load"),
        }
    }
}

fn stop_load(s: &LoadState) {
    s.run.store(false, Relaxed);
    let t = Instant::now();
    while s.live.load(Relaxed) != 0 {
        if t.elapsed() > WAIT_BOUND {
            fail("a load did not stop");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// A pause of 200–700 us between samples (a small LCG: no crates beyond tokio).
fn pause(rng: &mut u64) {
    *rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    std::thread::sleep(Duration::from_micros(200 + (*rng >> 33) % 500));
}

// The samples, or None when one of them starved.
fn probe_post(rt: &Runtime, samples: usize, rng: &mut u64) -> Option<Vec<u64>> {
    let (tx, rx) = mpsc::channel::<u64>();
    let mut out = Vec::new();
    let phase = Instant::now();
    for _ in 0..samples {
        if phase.elapsed() > PHASE_BOUND {
            break;
        }
        let t0 = Instant::now();
        let tx = tx.clone();
        rt.handle().spawn(async move {
            let _ = tx.send(t0.elapsed().as_nanos() as u64);
        });
        match rx.recv_timeout(SAMPLE_BOUND) {
            Ok(v) => out.push(v),
            Err(_) => return None,
        }
        pause(rng);
    }
    Some(out)
}

fn probe_timer(rt: &Runtime, samples: usize) -> Option<Vec<u64>> {
    let (tx, rx) = mpsc::channel::<Vec<u64>>();
    rt.spawn(async move {
        let mut out = Vec::new();
        let phase = Instant::now();
        for _ in 0..samples {
            if phase.elapsed() > PHASE_BOUND {
                break;
            }
            let expiry = tokio::time::Instant::now() + TIMER_PERIOD;
            tokio::time::sleep_until(expiry).await;
            out.push(expiry.elapsed().as_nanos() as u64);
        }
        let _ = tx.send(out);
    });
    rx.recv_timeout(PHASE_BOUND + SAMPLE_BOUND).ok()
}

fn probe_accept(rt: &Runtime, samples: usize, rng: &mut u64) -> Option<Vec<u64>> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener).unwrap()
    };
    let base = Instant::now();
    let accepted_at = Arc::new(AtomicI64::new(-1));
    let (tx, rx) = mpsc::channel::<()>();
    let n = samples / 2;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let accepted_at = accepted_at.clone();
        let stop = stop.clone();
        rt.spawn(async move {
            for _ in 0..n {
                // Bounded: the bench thread stops connecting after PHASE_BOUND.
                match tokio::time::timeout(WAIT_BOUND, listener.accept()).await {
                    Ok(Ok((_sock, _))) => {
                        accepted_at.store(base.elapsed().as_nanos() as i64, Relaxed);
                        let _ = tx.send(());
                    }
                    _ => break,
                }
                if stop.load(Relaxed) {
                    break;
                }
            }
        });
    }
    let mut out = Vec::new();
    let phase = Instant::now();
    for _ in 0..n {
        if phase.elapsed() > PHASE_BOUND {
            break;
        }
        let conn = std::net::TcpStream::connect(addr).unwrap_or_else(|_| fail("connect failed"));
        let t0 = base.elapsed().as_nanos() as i64;
        if rx.recv_timeout(SAMPLE_BOUND).is_err() {
            stop.store(true, Relaxed);
            return None;
        }
        out.push((accepted_at.load(Relaxed) - t0).max(0) as u64);
        drop(conn);
        pause(rng);
    }
    stop.store(true, Relaxed);
    // One more connection ends the accept loop if it is still waiting.
    let _ = std::net::TcpStream::connect(addr);
    Some(out)
}

fn report(load: &str, workers: usize, metric: &str, v: Option<Vec<u64>>) {
    let Some(mut v) = v else {
        println!("tokio,{},{},{}_p50,-1,ns", load, workers, metric);
        println!("tokio,{},{},{}_p99,-1,ns", load, workers, metric);
        return;
    };
    v.sort_unstable();
    let at = |q: f64| if v.is_empty() { 0 } else { v[((q * v.len() as f64) as usize).min(v.len() - 1)] as i64 };
    println!("tokio,{},{},{}_p50,{},ns", load, workers, metric, at(0.50));
    println!("tokio,{},{},{}_p99,{},ns", load, workers, metric, at(0.99));
}

fn run_load(workers: usize, samples: usize, load: &str) {
    let rt = runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();
    let s = Arc::new(LoadState {
        run: AtomicBool::new(true),
        live: AtomicUsize::new(0),
        count: (0..workers).map(|_| LaneCounter(AtomicU64::new(0))).collect(),
    });
    let mut rng = 42u64;
    start_load(&rt, load, &s, workers);
    std::thread::sleep(WARM_UP);
    let t0 = Instant::now();
    let n0 = s.total();
    let post = probe_post(&rt, samples, &mut rng);
    let timer = probe_timer(&rt, samples);
    let accept = probe_accept(&rt, samples, &mut rng);
    let n1 = s.total();
    let secs = t0.elapsed().as_secs_f64();
    stop_load(&s);
    report(load, workers, "post", post);
    report(load, workers, "timer", timer);
    report(load, workers, "accept", accept);
    let rate = if load == "none" { 0.0 } else { (n1 - n0) as f64 / secs };
    println!("tokio,{},{},busy_rate,{:.0},per_s", load, workers, rate);
    let _ = std::io::stdout().flush();
    rt.shutdown_timeout(WAIT_BOUND);
}

fn main() {
    let mut workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut samples = 500usize;
    let mut loads = String::from("none,yield,budget,chain");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).unwrap_or_else(|| fail("an option needs a value"));
        match args[i].as_str() {
            "--workers" => workers = v.parse().unwrap_or_else(|_| fail("bad --workers")),
            "--samples" => samples = v.parse().unwrap_or_else(|_| fail("bad --samples")),
            "--loads" => loads = v.clone(),
            other => fail(&format!("unknown argument {}", other)),
        }
        i += 2;
    }
    if workers == 0 || samples < 2 {
        fail("--workers and --samples must be positive");
    }
    for load in loads.split(',').filter(|l| !l.is_empty()) {
        run_load(workers, samples, load);
    }
}
