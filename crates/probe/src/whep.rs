//! A WHEP client (str0m, frame mode): it plays a session like a browser would, counts what
//! arrives and, with GStreamer, decodes the video to check it and optionally dump frames.
//!
//! Used by the integration tests and `fieldcast-probe watch`; the load generator (swarm.rs) grows from it.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Pt};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use fieldcast_engine::media::time_code;

use crate::link::Link;
use gstreamer_video::prelude::VideoFrameExt;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("WHEP request failed: {0}")]
    Http(String),
    #[error("WebRTC: {0}")]
    Rtc(String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("decoder: {0}")]
    Decoder(String),
}

#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// Stop after this long.
    pub duration: Duration,
    /// Stop early once this many frames were decoded.
    pub stop_after_frames: Option<usize>,
    /// Decode the video (needed for sizes, colours and dumps).
    pub decode: bool,
    /// Write every `dump_every`-th decoded frame as a PPM file into this directory.
    pub dump_dir: Option<PathBuf>,
    pub dump_every: usize,
    /// Write the received video, as an Annex B H.264 elementary stream, to this file.
    pub h264_file: Option<PathBuf>,
    /// A rectangle (x, y, width, height) whose pixels each decoded frame reports, grey and
    /// subsampled, in [`DecodedFrame::region`].
    pub region: Option<(u32, u32, u32, u32)>,
    /// Keep the last decoded picture (RGB) in the report.
    pub keep_last_frame: bool,
    /// The clock `DecodedFrame::at` counts from (default: when `play` starts).
    pub epoch: Option<Instant>,
    /// A slow or stuck viewer: this long after connecting, stop reading the socket (and
    /// answering anything) for the rest of `duration`.
    pub stall_after: Option<Duration>,
    /// Read a wall-clock time code ([`fieldcast_engine::media::time_code`]) at this origin from each
    /// decoded picture, as it leaves the decoder, into
    /// [`PlaybackReport::time_code_latency_ms`].
    pub time_code: Option<(usize, usize)>,
}

impl Default for PlayOptions {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(10),
            stop_after_frames: None,
            stall_after: None,
            decode: true,
            dump_dir: None,
            dump_every: 30,
            h264_file: None,
            region: None,
            keep_last_frame: false,
            epoch: None,
            time_code: None,
        }
    }
}

/// One decoded picture.
#[derive(Debug, Clone)]
pub struct DecodedFrame {
    /// Time since the client started.
    pub at: Duration,
    pub width: u32,
    pub height: u32,
    /// Mean red, green, blue over the picture.
    pub mean_rgb: [u8; 3],
    /// Grey levels of every second pixel of `PlayOptions::region`, row by row.
    pub region: Option<Arc<[u8]>>,
}

/// One decoded picture, RGB, rows packed.
#[derive(Debug, Clone)]
pub struct RgbFrame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbFrame {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

#[derive(Debug, Default, Clone)]
pub struct PlaybackReport {
    pub connected_after: Option<Duration>,
    pub video_packets: u64,
    /// Depacketized video access units.
    pub video_frames: u64,
    pub keyframes: u64,
    /// Slices of type B seen in the video (WebRTC-safe output has none).
    pub b_slices: u64,
    pub audio_packets: u64,
    /// Video frames that arrived after a loss (str0m reports them as not contiguous).
    pub gaps: u64,
    pub first_frame_after: Option<Duration>,
    pub decoded: Vec<DecodedFrame>,
    pub last_frame: Option<RgbFrame>,
    /// Per decoded picture with a readable time code: now minus the time it carries.
    pub time_code_latency_ms: Vec<i64>,
}

impl PlaybackReport {
    pub fn decoded_at_size(&self, width: u32, height: u32) -> usize {
        self.decoded
            .iter()
            .filter(|f| f.width == width && f.height == height)
            .count()
    }
}

/// How a viewer gets its session negotiated: a WHEP server answers our offer; other servers
/// (Janus, in the benchmarks) send an offer that we answer.
pub trait Signalling {
    /// Binds a socket, builds `config` into a session with a host candidate on it and
    /// negotiates it with the server.
    fn open(&self, config: RtcConfig) -> Result<Negotiated, ClientError>;
}

/// A negotiated viewer session, before any packet flowed.
pub struct Negotiated {
    pub rtc: Rtc,
    pub link: Link,
    pub local: SocketAddr,
    /// Ends the session on the server (WHEP: DELETE the resource).
    pub leave: Option<Box<dyn FnOnce() + Send>>,
}

/// WHEP (draft-ietf-wish-whep): POST our offer, get the answer and a resource to DELETE.
pub struct Whep {
    pub url: String,
}

impl Signalling for Whep {
    fn open(&self, config: RtcConfig) -> Result<Negotiated, ClientError> {
        let socket = UdpSocket::bind((local_ip_towards(&self.url)?, 0))?;
        negotiate(&self.url, config, Link::Udp(socket))
    }
}

/// WHEP with the media over ICE-TCP: one connection to the server's passive TCP candidate
/// (`webrtc_tcp=` in its ready line), offered as an active candidate, as a browser on a
/// network that drops UDP does.
pub struct WhepOverTcp {
    pub url: String,
    pub server: SocketAddr,
}

impl Signalling for WhepOverTcp {
    fn open(&self, config: RtcConfig) -> Result<Negotiated, ClientError> {
        negotiate(&self.url, config, Link::tcp(self.server)?)
    }
}

fn negotiate(url: &str, config: RtcConfig, link: Link) -> Result<Negotiated, ClientError> {
    let local = link.local_addr()?;
    let mut rtc = config.build(Instant::now());
    let candidate = match link {
        Link::Udp(_) => Candidate::host(local, "udp"),
        Link::Tcp(_) => Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build(),
    }
    .map_err(|e| ClientError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let mut changes = rtc.sdp_api();
    changes.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    changes.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = changes
        .apply()
        .ok_or_else(|| ClientError::Rtc("no offer".into()))?;
    let (answer_sdp, location) = post_offer(url, &offer.to_sdp_string())?;
    let answer =
        SdpAnswer::from_sdp_string(&answer_sdp).map_err(|e| ClientError::Rtc(e.to_string()))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| ClientError::Rtc(e.to_string()))?;
    let url = url.to_string();
    let leave = location.map(|location| {
        Box::new(move || {
            let _ = delete_resource(&url, &location);
        }) as Box<dyn FnOnce() + Send>
    });
    Ok(Negotiated {
        rtc,
        link,
        local,
        leave,
    })
}

/// The local address this machine reaches the URL's host from (a loopback server: a
/// loopback address; a server across a veth link, as the network tests run one: the link's
/// own address). A UDP `connect` only picks the route; nothing is sent.
pub fn local_ip_towards(url: &str) -> Result<std::net::IpAddr, ClientError> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let target = std::net::ToSocketAddrs::to_socket_addrs(&authority)
        .map_err(|e| ClientError::Http(format!("{authority}: {e}")))?
        .next()
        .ok_or_else(|| ClientError::Http(format!("{authority}: no address")))?;
    let probe = UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    probe.connect(target)?;
    Ok(probe.local_addr()?.ip())
}

/// What a viewer accepts: H.264 constrained baseline (packetization-mode 1) and Opus, as a
/// browser would offer them.
pub fn viewer_config() -> RtcConfig {
    str0m::crypto::from_feature_flags().install_process_default();
    let mut config = RtcConfig::new().clear_codecs().enable_opus(true, false);
    config
        .codec_config()
        .add_h264(Pt::from(102), Some(Pt::from(103)), true, 0x42e01f);
    config
}

/// Plays `whep_url` for `options.duration` (or until enough frames) and reports.
pub fn play(whep_url: &str, options: &PlayOptions) -> Result<PlaybackReport, ClientError> {
    play_via(
        &Whep {
            url: whep_url.to_string(),
        },
        options,
    )
}

/// Plays what `signalling` negotiates, like [`play`].
pub fn play_via(
    signalling: &dyn Signalling,
    options: &PlayOptions,
) -> Result<PlaybackReport, ClientError> {
    let start = options.epoch.unwrap_or_else(Instant::now);
    let Negotiated {
        mut rtc,
        mut link,
        local,
        leave,
    } = signalling.open(viewer_config())?;

    if let Some(dir) = &options.dump_dir {
        std::fs::create_dir_all(dir)?;
    }
    let decoder = if options.decode {
        Some(Decoder::start(start, options)?)
    } else {
        None
    };
    let mut report = PlaybackReport::default();
    let result = run(
        &mut rtc,
        &mut link,
        local,
        start,
        options,
        decoder.as_ref(),
        &mut report,
    );
    if let Some(leave) = leave {
        leave();
    }
    if let Some(decoder) = decoder {
        (
            report.decoded,
            report.last_frame,
            report.time_code_latency_ms,
        ) = decoder.finish();
    }
    result.map(|()| report)
}

fn run(
    rtc: &mut Rtc,
    link: &mut Link,
    local: SocketAddr,
    start: Instant,
    options: &PlayOptions,
    decoder: Option<&Decoder>,
    report: &mut PlaybackReport,
) -> Result<(), ClientError> {
    let run_start = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut h264_out = match &options.h264_file {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    loop {
        if run_start.elapsed() >= options.duration {
            return Ok(());
        }
        if let (Some(stall), Some(connected)) = (options.stall_after, report.connected_after)
            && start.elapsed() >= connected + stall
        {
            std::thread::sleep(options.duration.saturating_sub(run_start.elapsed()));
            return Ok(());
        }
        if let (Some(limit), Some(d)) = (options.stop_after_frames, decoder)
            && d.count() >= limit
        {
            return Ok(());
        }
        let timeout = match rtc
            .poll_output()
            .map_err(|e| ClientError::Rtc(e.to_string()))?
        {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                link.send_to(&t.contents, t.destination)?;
                continue;
            }
            Output::Event(event) => {
                match event {
                    Event::Connected => report.connected_after = Some(start.elapsed()),
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return Err(ClientError::Rtc("ICE disconnected".into()));
                    }
                    Event::RtpPacket(_) => {}
                    Event::MediaData(data) => {
                        let codec = data.params.spec().codec;
                        if codec == Codec::H264 {
                            report.video_frames += 1;
                            report.gaps += u64::from(!data.contiguous);
                            report.video_packets +=
                                (**data.seq_range.end()).wrapping_sub(**data.seq_range.start()) + 1;
                            let info = inspect_h264(&data.data);
                            report.keyframes += u64::from(info.idr);
                            report.b_slices += info.b_slices;
                            if report.first_frame_after.is_none() {
                                report.first_frame_after = Some(start.elapsed());
                            }
                            if let Some(d) = decoder {
                                d.push(&data.data);
                            }
                            if let Some(file) = h264_out.as_mut() {
                                use std::io::Write;
                                file.write_all(&data.data)?;
                            }
                        } else if codec == Codec::Opus {
                            report.audio_packets += 1;
                        }
                    }
                    _ => {}
                }
                continue;
            }
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        if wait.is_zero() {
            rtc.handle_input(Input::Timeout(Instant::now()))
                .map_err(|e| ClientError::Rtc(e.to_string()))?;
            continue;
        }
        link.set_read_timeout(Some(wait))?;
        match link.recv_from(&mut buf) {
            Ok((n, source)) => {
                let Some(input) = received(link.protocol(), &buf[..n], source, local) else {
                    continue;
                };
                rtc.handle_input(input)
                    .map_err(|e| ClientError::Rtc(e.to_string()))?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| ClientError::Rtc(e.to_string()))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A packet that arrived on a viewer's link, as str0m input (`None` if it is not one str0m
/// could take: too short or too long).
pub(crate) fn received(
    proto: Protocol,
    contents: &[u8],
    source: SocketAddr,
    destination: SocketAddr,
) -> Option<Input<'_>> {
    Some(Input::Receive(
        Instant::now(),
        Receive {
            proto,
            source,
            destination,
            contents: contents.try_into().ok()?,
        },
    ))
}

fn post_offer(url: &str, sdp: &str) -> Result<(String, Option<String>), ClientError> {
    let mut response = ureq::post(url)
        .header("Content-Type", "application/sdp")
        .send(sdp)
        .map_err(|e| ClientError::Http(format!("POST {url}: {e}")))?;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = response
        .body_mut()
        .read_to_string()
        .map_err(|e| ClientError::Http(format!("POST {url}: reading the answer: {e}")))?;
    Ok((answer, location))
}

fn delete_resource(whep_url: &str, location: &str) -> Result<(), ClientError> {
    let url = if location.starts_with("http") {
        location.to_string()
    } else {
        // Same origin as the endpoint.
        let origin_end = whep_url.find("/whep/").unwrap_or(whep_url.len());
        format!("{}{}", &whep_url[..origin_end], location)
    };
    ureq::delete(&url)
        .call()
        .map_err(|e| ClientError::Http(format!("DELETE {url}: {e}")))?;
    Ok(())
}

/// What an H.264 access unit holds.
#[derive(Debug, Default, PartialEq)]
pub struct AccessUnitInfo {
    pub idr: bool,
    pub b_slices: u64,
}

/// Reads NAL types and slice types from an Annex B access unit.
pub fn inspect_h264(au: &[u8]) -> AccessUnitInfo {
    let mut info = AccessUnitInfo::default();
    for nal in annex_b_nals(au) {
        let Some(&header) = nal.first() else { continue };
        match header & 0x1F {
            5 => info.idr = true,
            1 => {
                // slice_header: first_mb_in_slice ue(v), slice_type ue(v)
                let rbsp: Vec<u8> = unescape(&nal[1..nal.len().min(17)]);
                let mut bits = BitReader {
                    data: &rbsp,
                    pos: 0,
                };
                if bits.ue().is_some()
                    && let Some(slice_type) = bits.ue()
                    && slice_type % 5 == 1
                {
                    info.b_slices += 1;
                }
            }
            _ => {}
        }
    }
    info
}

fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map(|&n| n - 3).unwrap_or(data.len());
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&data[s..end]);
    }
    nals
}

fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit as u32)
    }
    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let mut value = 0u32;
        for _ in 0..zeros {
            value = (value << 1) | self.bit()?;
        }
        Some((1u32 << zeros) - 1 + value)
    }
}

/// GStreamer decode of the received video: appsrc ▶ h264parse ▶ avdec_h264 ▶ RGB ▶ appsink.
struct Decoder {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    frames: Arc<Mutex<Vec<DecodedFrame>>>,
    last: Arc<Mutex<Option<RgbFrame>>>,
    time_code_latency: Arc<Mutex<Vec<i64>>>,
}

impl Decoder {
    fn start(start: Instant, options: &PlayOptions) -> Result<Self, ClientError> {
        gst::init().map_err(|e| ClientError::Decoder(e.to_string()))?;
        let pipeline = gst::parse::launch(
            "appsrc name=src is-live=true format=time \
               caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! h264parse ! avdec_h264 name=decoder thread-type=slice ! videoconvert \
             ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        )
        .map_err(|e| ClientError::Decoder(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ClientError::Decoder("not a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| ClientError::Decoder("no appsrc".into()))?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| ClientError::Decoder("no appsink".into()))?;
        let time_code_latency = Arc::new(Mutex::new(Vec::new()));
        if let Some(origin) = options.time_code {
            read_time_codes(&pipeline, origin, time_code_latency.clone())?;
        }
        let frames = Arc::new(Mutex::new(Vec::new()));
        let out = frames.clone();
        let last = Arc::new(Mutex::new(None));
        let last_out = last.clone();
        let keep_last = options.keep_last_frame;
        let region = options.region;
        let dump_dir = options.dump_dir.clone();
        let dump_every = options.dump_every.max(1);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(info) = gstreamer_video::VideoInfo::from_caps(caps) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(map) = buffer.map_readable() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let (width, height, stride) =
                        (info.width(), info.height(), info.stride()[0] as usize);
                    let frame = DecodedFrame {
                        at: start.elapsed(),
                        width,
                        height,
                        mean_rgb: mean_rgb(&map, width as usize, height as usize, stride),
                        region: region.map(|r| grey_region(&map, stride, width, height, r)),
                    };
                    if keep_last {
                        let mut data = Vec::with_capacity((width * height * 3) as usize);
                        for y in 0..height as usize {
                            if let Some(row) = map.get(y * stride..y * stride + width as usize * 3)
                            {
                                data.extend_from_slice(row);
                            }
                        }
                        *last_out.lock().unwrap_or_else(|e| e.into_inner()) = Some(RgbFrame {
                            width,
                            height,
                            data,
                        });
                    }
                    let mut frames = out.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(dir) = &dump_dir
                        && frames.len() % dump_every == 0
                    {
                        let path = dir.join(format!("frame-{:05}.ppm", frames.len()));
                        let _ = write_ppm(
                            &path,
                            &map,
                            info.width() as usize,
                            info.height() as usize,
                            info.stride()[0] as usize,
                        );
                    }
                    frames.push(frame);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| ClientError::Decoder(e.to_string()))?;
        Ok(Self {
            pipeline,
            src,
            frames,
            last,
            time_code_latency,
        })
    }

    fn push(&self, access_unit: &[u8]) {
        let _ = self
            .src
            .push_buffer(gst::Buffer::from_slice(access_unit.to_vec()));
    }

    fn count(&self) -> usize {
        self.frames.lock().map(|f| f.len()).unwrap_or(0)
    }

    fn finish(self) -> (Vec<DecodedFrame>, Option<RgbFrame>, Vec<i64>) {
        let _ = self.src.end_of_stream();
        std::thread::sleep(Duration::from_millis(100));
        let _ = self.pipeline.set_state(gst::State::Null);
        let frames = std::mem::take(&mut *self.frames.lock().unwrap_or_else(|e| e.into_inner()));
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).take();
        let latency = std::mem::take(
            &mut *self
                .time_code_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        (frames, last, latency)
    }
}

/// Reads the time code from each picture as the decoder hands it over (I420, before any
/// conversion), and records how old it is.
fn read_time_codes(
    pipeline: &gst::Pipeline,
    origin: (usize, usize),
    out: Arc<Mutex<Vec<i64>>>,
) -> Result<(), ClientError> {
    let pad = pipeline
        .by_name("decoder")
        .and_then(|e| e.static_pad("src"))
        .ok_or_else(|| ClientError::Decoder("no decoder src pad".into()))?;
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let now = time_code::now_ms();
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_ref() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(info) = pad
            .current_caps()
            .and_then(|caps| gstreamer_video::VideoInfo::from_caps(&caps).ok())
        else {
            return gst::PadProbeReturn::Ok;
        };
        let Ok(frame) = gstreamer_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        else {
            return gst::PadProbeReturn::Ok;
        };
        let (Ok(y), Some(&stride)) = (frame.plane_data(0), frame.plane_stride().first()) else {
            return gst::PadProbeReturn::Ok;
        };
        if let Some(stamp) = time_code::read(y, stride as usize, origin) {
            out.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(now.wrapping_sub(stamp) as i32 as i64);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

fn grey_region(
    data: &[u8],
    stride: usize,
    width: u32,
    height: u32,
    (rx, ry, rw, rh): (u32, u32, u32, u32),
) -> Arc<[u8]> {
    let mut out = Vec::with_capacity((rw * rh / 4) as usize);
    for y in (ry..(ry + rh).min(height)).step_by(2) {
        for x in (rx..(rx + rw).min(width)).step_by(2) {
            let i = y as usize * stride + x as usize * 3;
            if let Some(px) = data.get(i..i + 3) {
                out.push(((px[0] as u32 * 77 + px[1] as u32 * 150 + px[2] as u32 * 29) >> 8) as u8);
            }
        }
    }
    Arc::from(out)
}

fn mean_rgb(data: &[u8], width: usize, height: usize, stride: usize) -> [u8; 3] {
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for y in (0..height).step_by(4) {
        let Some(row) = data.get(y * stride..y * stride + width * 3) else {
            break;
        };
        for px in row.chunks_exact(3).step_by(4) {
            sum[0] += px[0] as u64;
            sum[1] += px[1] as u64;
            sum[2] += px[2] as u64;
            n += 1;
        }
    }
    let n = n.max(1);
    [(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]
}

fn write_ppm(
    path: &std::path::Path,
    data: &[u8],
    width: usize,
    height: usize,
    stride: usize,
) -> std::io::Result<()> {
    let mut out = format!("P6\n{width} {height}\n255\n").into_bytes();
    for y in 0..height {
        if let Some(row) = data.get(y * stride..y * stride + width * 3) {
            out.extend_from_slice(row);
        }
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_types_are_read_from_annex_b() {
        // IDR, then a P slice (slice_type 0 → ue "1"), then a B slice (slice_type 1 → "010").
        let au = [
            0,
            0,
            0,
            1,
            0x65,
            0x88,
            0,
            0,
            1,
            0x41,
            0b1100_0000,
            0,
            0,
            1,
            0x01,
            0b1010_0000,
        ];
        assert_eq!(
            inspect_h264(&au),
            AccessUnitInfo {
                idr: true,
                b_slices: 1
            }
        );
    }
}
