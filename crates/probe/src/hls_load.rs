//! The LL-HLS load generator (`fieldcast-probe hls-swarm`): thousands of clients on one thread,
//! each a player's network behaviour without the decoding: a blocking playlist reload for
//! the next part (`_HLS_msn`/`_HLS_part`), then every new part, over one keep-alive
//! connection, from its own source address (so per-address counts see distinct clients).
//!
//! A part is *late* for a client when it arrived more than one part target after the first
//! client that got it: that client is falling behind the live edge by a part. A client that
//! lost its place *fell behind*: its playlist had moved past the last part it fetched, or a
//! part its playlist listed had left the window (404) by the time it asked. Like a player, it
//! then goes on from the live edge.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use fieldcast_engine::hls::window::PART_TARGET;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `http://HOST:PORT/hls/SESSION/ll.m3u8`
    pub url: String,
    pub clients: usize,
    /// Clients join evenly over this time.
    pub ramp: Duration,
    /// How long every client plays after the last joined.
    pub play: Duration,
    /// Source addresses, used in turn (empty: the system's choice).
    pub sources: Vec<IpAddr>,
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub clients: usize,
    /// Clients that fetched at least one part.
    pub playing: usize,
    pub parts_fetched: u64,
    pub parts_late: u64,
    pub fell_behind: u64,
    pub playlists: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Spread of part arrivals after the first client's, p50 and p99.
    pub spread_p50: Duration,
    pub spread_p99: Duration,
    /// The measured window (after the ramp): its length.
    pub window: Duration,
}

struct Target {
    host: String,
    addr: SocketAddr,
    /// Path of the playlist, and of its directory (parts are relative to it).
    playlist: String,
    dir: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest.split_once('/').ok_or("the URL has no path")?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or(format!("{host}: no address"))?;
    let path = format!("/{path}");
    let dir = path[..path.rfind('/').unwrap_or(0) + 1].to_string();
    Ok(Target {
        host: host.to_string(),
        addr,
        playlist: path,
        dir,
    })
}

/// A minimal HTTP/1.1 keep-alive client: GET, Content-Length or chunked bodies.
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// GET `path`; `keep` says whether the body is wanted (parts are counted, not kept).
    async fn get(&mut self, host: &str, path: &str, keep: bool) -> std::io::Result<(Answer, u64)> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fieldcast-hls-swarm\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await?;
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            if self.buf.len() > 64 * 1024 {
                return Err(invalid("response head over 64 KiB"));
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no status"))?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let mut body = Vec::new();
        let mut received = 0u64;
        if let Some(length) = header("content-length") {
            let length: usize = length.parse().map_err(|_| invalid("bad length"))?;
            received += self.take(length, keep.then_some(&mut body)).await? as u64;
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let line_end = loop {
                    if let Some(at) = find(&self.buf, b"\r\n") {
                        break at;
                    }
                    self.fill().await?;
                };
                let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                self.buf.drain(..line_end + 2);
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| invalid("bad chunk size"))?;
                received += self.take(size, keep.then_some(&mut body)).await? as u64;
                self.take(2, None).await?;
                if size == 0 {
                    break;
                }
            }
        }
        Ok((Answer { status, body }, received))
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn take(
        &mut self,
        mut n: usize,
        mut keep: Option<&mut Vec<u8>>,
    ) -> std::io::Result<usize> {
        let total = n;
        loop {
            let here = n.min(self.buf.len());
            if let Some(keep) = keep.as_deref_mut() {
                keep.extend_from_slice(&self.buf[..here]);
            }
            self.buf.drain(..here);
            n -= here;
            if n == 0 {
                return Ok(total);
            }
            self.fill().await?;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// What a client needs of a low-latency playlist: the parts listed (URI, and the segment
/// and index they are), and where the live edge is.
#[derive(Debug, Default, PartialEq)]
pub struct Listing {
    pub parts: Vec<(u64, u64, String)>,
    /// The segment being made and how many parts it has.
    pub edge: (u64, u64),
}

pub fn parse_listing(text: &str) -> Option<Listing> {
    let mut msn: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let mut index = 0;
    let mut listing = Listing::default();
    let mut after_extinf = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let uri = rest.split("URI=\"").nth(1)?.split('"').next()?;
            listing.parts.push((msn, index, uri.to_string()));
            index += 1;
        } else if line.starts_with("#EXTINF:") {
            after_extinf = true;
        } else if after_extinf && !line.starts_with('#') && !line.is_empty() {
            after_extinf = false;
            msn += 1;
            index = 0;
        }
    }
    listing.edge = (msn, index);
    Some(listing)
}

#[derive(Default)]
struct Shared {
    /// Part URI → the first arrival at any client.
    first: HashMap<String, Instant>,
    /// Every client's arrivals (URI, when), to compare at the end.
    arrivals: Vec<(String, Instant)>,
    report: LoadReport,
}

/// Whether the live playlist (no blocking) lists part `uri`; `None` when it cannot be read.
async fn live_lists(connection: &mut Connection, target: &Target, uri: &str) -> Option<bool> {
    match connection.get(&target.host, &target.playlist, true).await {
        Ok((answer, _)) if answer.status == 200 => {
            let listing = parse_listing(&String::from_utf8_lossy(&answer.body))?;
            Some(listing.parts.iter().any(|(_, _, u)| u == uri))
        }
        _ => None,
    }
}

/// One client: play from the live edge until `until`.
async fn client(
    target: Arc<Target>,
    source: Option<IpAddr>,
    until: Instant,
    counted_from: Instant,
    shared: Arc<Mutex<Shared>>,
) {
    let fail = |e: String| {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        s.report.errors += 1;
        s.report.first_error.get_or_insert(e);
    };
    let mut connection = match Connection::open(target.addr, source).await {
        Ok(c) => c,
        Err(e) => return fail(format!("connect: {e}")),
    };
    let mut next: Option<(u64, u64)> = None;
    let mut last_part: Option<String> = None;
    let mut read_at;
    let mut fetched = 0u64;
    let mut arrivals = Vec::new();
    let (mut playlists, mut bytes, mut fell_behind) = (0u64, 0u64, 0u64);
    while Instant::now() < until {
        let path = match next {
            None => target.playlist.clone(),
            Some((msn, part)) => format!("{}?_HLS_msn={msn}&_HLS_part={part}", target.playlist),
        };
        let listing = match connection.get(&target.host, &path, true).await {
            Ok((answer, _)) if answer.status == 200 => {
                read_at = Instant::now();
                playlists += 1;
                match parse_listing(&String::from_utf8_lossy(&answer.body)) {
                    Some(l) => l,
                    None => return fail("a playlist without a media sequence".into()),
                }
            }
            Ok((answer, _)) if answer.status == 503 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Ok((answer, _)) => return fail(format!("playlist: HTTP {}", answer.status)),
            Err(e) => return fail(format!("playlist: {e}")),
        };
        // New parts: after the last one fetched; at the start, the newest only.
        let start = match &last_part {
            Some(uri) => match listing.parts.iter().position(|(_, _, u)| u == uri) {
                Some(at) => at + 1,
                None => {
                    fell_behind += 1;
                    listing.parts.len().saturating_sub(1)
                }
            },
            None => listing.parts.len().saturating_sub(1),
        };
        let mut rejoin = false;
        for (_, _, uri) in listing.parts.iter().skip(start) {
            let path = format!("{}{uri}", target.dir);
            match connection.get(&target.host, &path, false).await {
                Ok((answer, n)) if answer.status == 200 => {
                    let now = Instant::now();
                    if now >= counted_from {
                        fetched += 1;
                        bytes += n;
                        arrivals.push((uri.clone(), now));
                    }
                }
                Ok((answer, _)) => {
                    // Listed, and no longer in the live playlist: this client is behind the
                    // window. A part the live playlist still lists must not be missing.
                    if answer.status == 404
                        && live_lists(&mut connection, &target, uri).await == Some(false)
                    {
                        fell_behind += 1;
                        rejoin = true;
                        break;
                    }
                    let newest = listing.parts.last().map_or("", |(_, _, u)| u);
                    return fail(format!(
                        "part {uri}: HTTP {} ({} ms after the playlist that listed it, up to {newest})",
                        answer.status,
                        read_at.elapsed().as_millis()
                    ));
                }
                Err(e) => return fail(format!("part: {e}")),
            }
            last_part = Some(uri.clone());
        }
        if rejoin {
            (next, last_part) = (None, None);
        } else {
            next = Some(listing.edge);
        }
    }
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    for (uri, at) in &arrivals {
        let first = s.first.entry(uri.clone()).or_insert(*at);
        if *at < *first {
            *first = *at;
        }
    }
    s.arrivals.extend(arrivals);
    s.report.playlists += playlists;
    s.report.parts_fetched += fetched;
    s.report.fell_behind += fell_behind;
    s.report.bytes += bytes;
    if fetched > 0 {
        s.report.playing += 1;
    }
}

/// Runs the clients on the calling thread (a current-thread runtime) and reports.
pub fn run(options: &LoadOptions) -> Result<LoadReport, String> {
    let target = Arc::new(parse_url(&options.url)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let start = Instant::now();
    let counted_from = start + options.ramp;
    let until = counted_from + options.play;
    runtime.block_on(async {
        let mut tasks = Vec::with_capacity(options.clients);
        for i in 0..options.clients {
            let join_at = start
                + options
                    .ramp
                    .mul_f64(i as f64 / options.clients.max(1) as f64);
            tokio::time::sleep_until(join_at.into()).await;
            let source =
                (!options.sources.is_empty()).then(|| options.sources[i % options.sources.len()]);
            tasks.push(tokio::spawn(client(
                target.clone(),
                source,
                until,
                counted_from,
                shared.clone(),
            )));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    let mut shared = std::mem::take(&mut *shared.lock().unwrap_or_else(|e| e.into_inner()));
    let mut spread: Vec<Duration> = shared
        .arrivals
        .iter()
        .map(|(uri, at)| at.saturating_duration_since(shared.first[uri]))
        .collect();
    spread.sort();
    let at = |p: f64| {
        spread
            .get(((spread.len().max(1) - 1) as f64 * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    shared.report.parts_late = spread.iter().filter(|d| **d > PART_TARGET).count() as u64;
    shared.report.spread_p50 = at(0.5);
    shared.report.spread_p99 = at(0.99);
    shared.report.clients = options.clients;
    shared.report.window = options.play;
    Ok(shared.report)
}

/// CPU time (user + system) a process has used, in seconds, from `/proc`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

/// `127.0.0.2+100`: 100 addresses from 127.0.0.2 on; or one address.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let (first, count) = match text.split_once('+') {
        Some((first, count)) => (
            first,
            count
                .parse::<u32>()
                .map_err(|_| format!("bad count in {text:?}"))?,
        ),
        None => (text, 1),
    };
    let first: std::net::Ipv4Addr = first
        .parse()
        .map_err(|_| format!("not an IPv4 address: {first:?}"))?;
    Ok((0..count)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::from(u32::from(first).wrapping_add(i))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_knows_its_parts_and_the_live_edge() {
        let text = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXT-X-PART:DURATION=0.3,URI=\"p1.0.ts\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.3,URI=\"p1.1.ts\"\n\
            #EXTINF:0.6,\ns10.ts\n#EXT-X-PART:DURATION=0.3,URI=\"p1.2.ts\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p1.3.ts\"\n";
        let listing = parse_listing(text).unwrap();
        assert_eq!(listing.edge, (11, 1));
        assert_eq!(listing.parts.len(), 3);
        assert_eq!(listing.parts[2], (11, 0, "p1.2.ts".to_string()));
        assert_eq!(parse_listing("#EXTM3U\n"), None);
    }

    #[test]
    fn source_ranges() {
        let s = parse_sources("127.0.0.254+3").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].to_string(), "127.0.1.0");
        assert!(parse_sources("nope").is_err());
    }
}
