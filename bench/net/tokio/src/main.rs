//! bench/net's servers on Tokio: the same plaintext HTTP/1.1 and TCP echo protocols as
//! bench/net/asio_servers.cpp, byte for byte, on a multi-thread runtime.
//!
//! Usage: swarm-tokio-net --proto http|echo [--threads N] [--max-seconds S]
//!
//! Binds 127.0.0.1 on an ephemeral port, prints `port <P>` on stdout, and serves until it is
//! killed (SIGTERM's default action) or S seconds have passed (default 600), whichever is first.

use std::cell::RefCell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEAD_CAPACITY: usize = 8192; // a request head longer than this closes the connection
const ECHO_BUFFER: usize = 4096;

/// RFC 9110 IMF-fixdate of the current second, cached per thread.
fn with_http_date<R>(f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = RefCell::new((u64::MAX, String::new()));
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        if c.0 != now {
            c.1 = format_http_date(now);
            c.0 = now;
        }
        f(&c.1)
    })
}

fn format_http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]; // 1970-01-01 was a Thursday
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since the epoch (the proleptic Gregorian calendar, eras of 400 years).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn append_response(out: &mut Vec<u8>, head: &[u8]) {
    with_http_date(|date| {
        if head.starts_with(b"GET / ") {
            out.extend_from_slice(b"HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n\r\nHello, World!");
        } else {
            out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nServer: bench\r\nContent-Length: 0\r\nDate: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
        }
    });
}

fn find_end_of_head(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads request heads (no bodies), answers each complete one, in order; keep-alive until the
/// client closes.
async fn http_session(mut socket: TcpStream) {
    let mut buf = vec![0u8; HEAD_CAPACITY];
    let mut used = 0usize;
    let mut out = Vec::with_capacity(1024);
    loop {
        let n = match socket.read(&mut buf[used..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        used += n;
        let mut start = 0usize;
        while let Some(end) = find_end_of_head(&buf[start..used]) {
            append_response(&mut out, &buf[start..start + end]);
            start += end + 4;
        }
        buf.copy_within(start..used, 0);
        used -= start;
        if used == HEAD_CAPACITY {
            return; // a head that does not fit
        }
        if !out.is_empty() {
            if socket.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

async fn echo_session(mut socket: TcpStream) {
    let mut buf = [0u8; ECHO_BUFFER];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve(listener: TcpListener, http: bool) {
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                let _ = socket.set_nodelay(true);
                if http {
                    tokio::spawn(http_session(socket));
                } else {
                    tokio::spawn(echo_session(socket));
                }
            }
            Err(e) => {
                eprintln!("swarm-tokio-net: accept: {}", e);
                tokio::time::sleep(Duration::from_millis(10)).await; // e.g. out of descriptors
            }
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: swarm-tokio-net --proto http|echo [--threads N] [--max-seconds S]");
    std::process::exit(2);
}

fn main() {
    let mut proto = String::new();
    let mut threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut max_seconds = 600u64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--proto" => proto = value,
            "--threads" => threads = value.parse().ok().filter(|&n| n >= 1).unwrap_or_else(|| usage()),
            "--max-seconds" => max_seconds = value.parse().ok().filter(|&n| n >= 1).unwrap_or_else(|| usage()),
            _ => usage(),
        }
        i += 2;
    }
    let http = match proto.as_str() {
        "http" => true,
        "echo" => false,
        _ => usage(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("building the runtime");
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "port {}", port).and_then(|_| stdout.flush()).expect("stdout");
        let _ = tokio::time::timeout(Duration::from_secs(max_seconds), serve(listener, http)).await;
    });
}
