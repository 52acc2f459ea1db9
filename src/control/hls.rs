//! `/hls/{session_id}/...`: the studio's HLS for players and caches (see the engine's `hls/`).
//!
//! - `index.m3u8`: plain HLS, the window's segments and the one being made; cacheable for a
//!   segment (1 s).
//! - `ll.m3u8`: Low-Latency HLS. With `_HLS_msn` (and `_HLS_part`) the request blocks until
//!   that segment (part) is in the playlist, up to three target durations; such an answer
//!   holds the part it was asked for whenever it is read, so a cache may keep it for 2 s.
//!   Without, it is the live edge now, cacheable for no time HTTP can express (half a part
//!   is 125 ms; `max-age` counts whole seconds).
//! - `s{epoch}.{msn}.ts`, `p{epoch}.{n}.ts`: segments and parts, immutable. The part the playlist
//!   hints at is held until it is complete. The segment being made is sent as its parts are
//!   made (chunked), and the answer ends when the segment does: the same bytes, and the same
//!   validators, as once it is complete.
//! - `light/…`: the same three for the light rendition (about 640×360, 0.6 Mb/s).
//! - `master.m3u8`: the multivariant playlist over both renditions' low-latency playlists (a
//!   session's `hls_url`). Each low-latency playlist reports the other's live edge, so a
//!   player switching renditions asks for the right part at once.
//!
//! Every answer carries `ETag`, `Last-Modified` and `Access-Control-Allow-Origin: *`. The
//! first request while HLS is idle starts it and waits for its first segment.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::cacheable::{answer, held, open_to_all};
use super::client::Client;
use super::error::ApiError;
use fieldcast_engine::hls::packager::{PART_TARGET, Published, Snapshot};
use fieldcast_engine::hls::playlist::{Variant, multivariant, rendition_report};
use fieldcast_engine::hls::{HlsCounters, HlsStream, Track};
use fieldcast_engine::media::Rendition;
use fieldcast_engine::studio::Studios;

handles! {
    /// What the HLS routes use.
    Hls {
        studios: Arc<Studios>,
        hls: Arc<HlsCounters>,
    }
}

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MEDIA_TYPE: &str = "video/mp2t";
/// Segments and parts never change once published.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The plain playlist changes once a segment (1 s): a cache asks again after that.
const PLAIN_PLAYLIST: &str = "public, max-age=1";
/// A blocking reload's answer holds the part it asked for, whenever it is read.
const BLOCKING_PLAYLIST: &str = "public, max-age=2";
/// The low-latency live edge without a blocking request.
const LIVE_EDGE: &str = "public, max-age=0";
/// The first request while HLS is idle waits this long for its first segment.
const START_WAIT: Duration = Duration::from_secs(6);

/// The studio's HLS, or 404 when the session is not on air.
fn stream(state: &Hls, session_id: &str) -> Result<Arc<HlsStream>, ApiError> {
    state
        .studios
        .get(session_id)
        .map(|studio| studio.hls.clone())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such session on air; HLS plays while the session is live",
            )
        })
}

/// Waits until the window has a complete segment (HLS just started), or 503.
async fn started(track: &Track) -> Result<Published, ApiError> {
    let now = track.snapshot();
    if now.has_complete_segment() {
        return Ok(now);
    }
    track
        .wait_for(START_WAIT, Snapshot::has_complete_segment)
        .await
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "HLS is starting; try again in a moment",
            )
            .retry_after(1)
        })
}

/// A place among the blocking requests held (`hls_max_waiting`), for as long as the request
/// waits; 503 when every place is taken.
struct Blocking(Arc<HlsCounters>);

impl Blocking {
    fn new(state: &Hls) -> Result<Self, ApiError> {
        if !state.hls.start_waiting() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many blocking HLS requests are held; try again in a moment",
            )
            .retry_after(1));
        }
        Ok(Self(state.hls.clone()))
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        self.0.stop_waiting();
    }
}

fn last_made(snapshot: &Snapshot) -> SystemTime {
    snapshot
        .segments
        .iter()
        .rev()
        .find_map(|s| {
            s.parts
                .last()
                .map(|p| p.chunk.made)
                .or(s.whole.as_ref().map(|w| w.made))
        })
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `GET /hls/{session_id}/index.m3u8`.
#[utoipa::path(get, path = "/hls/{session_id}/index.m3u8", tag = "playing", params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Plain HLS media playlist of the main rendition (MPEG-TS segments)", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "The session is not on air", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "HLS is starting", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn plain_playlist(
    State(state): State<Hls>,
    Path(session_id): Path<String>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    plain(state, session_id, Rendition::Main, client, headers).await
}

/// `GET /hls/{session_id}/light/index.m3u8`.
#[utoipa::path(get, path = "/hls/{session_id}/light/index.m3u8", tag = "playing", params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Plain HLS media playlist of the light rendition", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "The session is not on air", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "HLS is starting", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn light_plain_playlist(
    State(state): State<Hls>,
    Path(session_id): Path<String>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    plain(state, session_id, Rendition::Light, client, headers).await
}

async fn plain(
    state: Hls,
    session_id: String,
    rendition: Rendition,
    client: Client,
    headers: HeaderMap,
) -> Response {
    open_to_all(
        async {
            let hls = stream(&state, &session_id)?;
            hls.touch(Some(client.0));
            let snapshot = started(hls.track(rendition)).await?;
            state.hls.playlists_served.fetch_add(1, Ordering::Relaxed);
            let last = snapshot.edge().map_or(0, |s| s.msn);
            Ok(answer(
                &headers,
                format!("\"{}-{last}\"", snapshot.epoch),
                last_made(&snapshot),
                PLAIN_PLAYLIST,
                PLAYLIST_TYPE,
                snapshot.plain.clone(),
            ))
        }
        .await,
    )
}

/// `GET /hls/{session_id}/master.m3u8`: the multivariant playlist.
#[utoipa::path(get, path = "/hls/{session_id}/master.m3u8", tag = "playing", params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "Multivariant playlist: the main and the light rendition's low-latency playlists, with BANDWIDTH, RESOLUTION and CODECS", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "The session is not on air", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "HLS is starting", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn multivariant_playlist(
    State(state): State<Hls>,
    Path(session_id): Path<String>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    open_to_all(
        async {
            let studio = state.studios.get(&session_id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no such session on air; HLS plays while the session is live",
                )
            })?;
            let hls = studio.hls.clone();
            hls.touch(Some(client.0));
            // Both renditions started: their codecs and sizes are known.
            let snapshot = started(hls.track(Rendition::Main)).await?;
            started(hls.track(Rendition::Light)).await?;
            let format = studio.format;
            let variants: Vec<Variant> = [
                (Rendition::Main, "ll.m3u8", format),
                (Rendition::Light, "light/ll.m3u8", format.light()),
            ]
            .into_iter()
            .map(|(rendition, uri, nominal)| {
                let track = hls.track(rendition);
                let (width, height) = track.size().unwrap_or((nominal.width, nominal.height));
                let codec = track
                    .video_codec()
                    .unwrap_or_else(|| "avc1.42c01f".to_string());
                // AAC is 96 kb/s; MPEG-TS adds about 10 %. The encoders' rate control keeps
                // each second near the bitrate (a keyframe each second): the peak segment is
                // about a fifth over the average. Overstated, it would make hls.js abandon
                // the light rendition's parts on a link that carries them.
                let average = (nominal.bitrate_kbps as u64 + 96) * 1100;
                Variant {
                    uri: uri.to_string(),
                    bandwidth: average * 6 / 5,
                    average_bandwidth: average,
                    width,
                    height,
                    fps: nominal.fps,
                    codecs: format!("{codec},mp4a.40.2"),
                }
            })
            .collect();
            state.hls.playlists_served.fetch_add(1, Ordering::Relaxed);
            Ok(answer(
                &headers,
                format!("\"m{}\"", snapshot.epoch),
                SystemTime::UNIX_EPOCH + Duration::from_secs(snapshot.epoch),
                PLAIN_PLAYLIST,
                PLAYLIST_TYPE,
                Bytes::from(multivariant(&variants)),
            ))
        }
        .await,
    )
}

/// The blocking-reload parameters of a low-latency playlist request.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Reload {
    /// Answer once segment `_HLS_msn` is in the playlist (complete, or with the part).
    #[serde(rename = "_HLS_msn")]
    #[param(rename = "_HLS_msn")]
    msn: Option<String>,
    /// With `_HLS_msn`: answer once that part of the segment is in the playlist.
    #[serde(rename = "_HLS_part")]
    #[param(rename = "_HLS_part")]
    part: Option<String>,
}

fn number(value: &Option<String>, name: &str) -> Result<Option<u64>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name} must be a whole number"),
                )
            })
        })
        .transpose()
}

/// `GET /hls/{session_id}/ll.m3u8[?_HLS_msn=M[&_HLS_part=P]]`.
#[utoipa::path(get, path = "/hls/{session_id}/ll.m3u8", tag = "playing", params(("session_id" = String, Path, description = "Session id"), Reload),
    responses((status = 200, description = "Low-Latency HLS media playlist of the main rendition (parts, blocking reload, preload hint, rendition report)", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "Bad or far-future `_HLS_msn` / `_HLS_part`", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The session is not on air", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "HLS is starting, or the part did not come within three target durations", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn low_latency_playlist(
    State(state): State<Hls>,
    Path(session_id): Path<String>,
    Query(reload): Query<Reload>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    low_latency(state, session_id, Rendition::Main, reload, client, headers).await
}

/// `GET /hls/{session_id}/light/ll.m3u8[?_HLS_msn=M[&_HLS_part=P]]`.
#[utoipa::path(get, path = "/hls/{session_id}/light/ll.m3u8", tag = "playing", params(("session_id" = String, Path, description = "Session id"), Reload),
    responses((status = 200, description = "Low-Latency HLS media playlist of the light rendition", body = String, content_type = "application/vnd.apple.mpegurl"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "Bad or far-future `_HLS_msn` / `_HLS_part`", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The session is not on air", body = super::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "HLS is starting, or the part did not come within three target durations", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn light_low_latency_playlist(
    State(state): State<Hls>,
    Path(session_id): Path<String>,
    Query(reload): Query<Reload>,
    client: Client,
    headers: HeaderMap,
) -> Response {
    low_latency(state, session_id, Rendition::Light, reload, client, headers).await
}

async fn low_latency(
    state: Hls,
    session_id: String,
    rendition: Rendition,
    reload: Reload,
    client: Client,
    headers: HeaderMap,
) -> Response {
    open_to_all(
        async {
            let hls = stream(&state, &session_id)?;
            let msn = number(&reload.msn, "_HLS_msn")?;
            let part = number(&reload.part, "_HLS_part")?;
            if part.is_some() && msn.is_none() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "_HLS_part needs _HLS_msn",
                ));
            }
            hls.touch(Some(client.0));
            let track = hls.track(rendition);
            let (snapshot, cache) = match msn {
                None => (started(track).await?, LIVE_EDGE),
                Some(msn) => {
                    let now = track.snapshot();
                    if let Some(edge) = now.edge()
                        && msn > edge.msn + 2
                    {
                        return Err(ApiError::new(
                            StatusCode::BAD_REQUEST,
                            format!(
                                "_HLS_msn {msn} is more than two segments past the live edge ({})",
                                edge.msn
                            ),
                        ));
                    }
                    let timeout = Duration::from_secs(3 * now.target_duration.max(1));
                    let _waiting = Blocking::new(&state)?;
                    let snapshot = track
                        .wait_for(timeout, |s| s.reached(msn, part))
                        .await
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "that part did not come within three target durations",
                            )
                            .retry_after(1)
                        })?;
                    (snapshot, BLOCKING_PLAYLIST)
                }
            };
            state.hls.playlists_served.fetch_add(1, Ordering::Relaxed);
            // The other rendition's live edge, as of now.
            let (other, uri) = match rendition {
                Rendition::Main => (Rendition::Light, "light/ll.m3u8"),
                Rendition::Light => (Rendition::Main, "../ll.m3u8"),
            };
            let body = match hls.track(other).snapshot().last_part() {
                Some(edge) => {
                    let mut text = snapshot.low_latency.to_vec();
                    text.extend_from_slice(rendition_report(uri, edge).as_bytes());
                    Bytes::from(text)
                }
                None => snapshot.low_latency.clone(),
            };
            Ok(answer(
                &headers,
                format!("\"{}-{}\"", snapshot.epoch, snapshot.next_part),
                last_made(&snapshot),
                cache,
                PLAYLIST_TYPE,
                body,
            ))
        }
        .await,
    )
}

/// What a media file name asks for.
#[derive(Debug, PartialEq)]
enum Media {
    Segment { epoch: u64, msn: u64 },
    Part { epoch: u64, number: u64 },
}

fn parse_media(file: &str) -> Option<Media> {
    let stem = file.strip_suffix(".ts")?;
    let (kind, rest) = stem.split_at_checked(1)?;
    let (epoch, number) = rest.split_once('.')?;
    let (epoch, number) = (epoch.parse().ok()?, number.parse().ok()?);
    match kind {
        "s" => Some(Media::Segment { epoch, msn: number }),
        "p" => Some(Media::Part { epoch, number }),
        _ => None,
    }
}

/// `GET /hls/{session_id}/{file}`: a segment (`s{epoch}.{msn}.ts`) or a part
/// (`p{epoch}.{n}.ts`) of the main rendition.
#[utoipa::path(get, path = "/hls/{session_id}/{file}", tag = "playing", params(("session_id" = String, Path, description = "Session id"), ("file" = String, Path, description = "`s{epoch}.{msn}.ts` or `p{epoch}.{n}.ts`")),
    responses((status = 200, description = "MPEG-TS: H.264 and AAC", body = Vec<u8>, content_type = "video/mp2t"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "Not in the window (too old, or not a media name)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn media(
    State(state): State<Hls>,
    Path((session_id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    media_of(state, session_id, Rendition::Main, file, headers).await
}

/// `GET /hls/{session_id}/light/{file}`: a segment or a part of the light rendition.
#[utoipa::path(get, path = "/hls/{session_id}/light/{file}", tag = "playing", params(("session_id" = String, Path, description = "Session id"), ("file" = String, Path, description = "`s{epoch}.{msn}.ts` or `p{epoch}.{n}.ts`")),
    responses((status = 200, description = "MPEG-TS: H.264 and AAC", body = Vec<u8>, content_type = "video/mp2t"),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 404, description = "Not in the window (too old, or not a media name)", body = super::error::Problem, content_type = "application/problem+json")))]
pub async fn light_media(
    State(state): State<Hls>,
    Path((session_id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    media_of(state, session_id, Rendition::Light, file, headers).await
}

async fn media_of(
    state: Hls,
    session_id: String,
    rendition: Rendition,
    file: String,
    headers: HeaderMap,
) -> Response {
    open_to_all(
        async {
            let hls = stream(&state, &session_id)?;
            let media = parse_media(&file).ok_or_else(|| ApiError::not_found("HLS file"))?;
            hls.touch(None);
            let track = hls.track(rendition);
            let snapshot = track.snapshot();
            match media {
                Media::Segment { epoch, msn } if snapshot.epoch == epoch => {
                    if let Some(segment) = snapshot.in_progress(msn) {
                        state.hls.segments_served.fetch_add(1, Ordering::Relaxed);
                        return Ok(growing_segment(
                            &state,
                            (hls.clone(), rendition),
                            &headers,
                            (epoch, msn),
                            segment.started,
                        ));
                    }
                    let chunk = snapshot
                        .segment(msn)
                        .ok_or_else(|| ApiError::not_found("segment"))?;
                    state.hls.segments_served.fetch_add(1, Ordering::Relaxed);
                    Ok(answer(
                        &headers,
                        format!("\"s{epoch}.{msn}\""),
                        chunk.made,
                        IMMUTABLE,
                        MEDIA_TYPE,
                        chunk.bytes.clone(),
                    ))
                }
                Media::Segment { .. } => Err(ApiError::not_found("segment")),
                Media::Part { epoch, number } => {
                    if epoch != snapshot.epoch {
                        return Err(ApiError::not_found("part"));
                    }
                    let snapshot =
                        if snapshot.part(number).is_none() && number == snapshot.next_part {
                            // The hinted part: held until it is complete.
                            let _waiting = Blocking::new(&state)?;
                            track
                                .wait_for(PART_TARGET * 6, |s| {
                                    s.epoch != epoch || s.next_part > number
                                })
                                .await
                                .unwrap_or(snapshot)
                        } else {
                            snapshot
                        };
                    let part = snapshot
                        .part(number)
                        .filter(|_| snapshot.epoch == epoch)
                        .ok_or_else(|| ApiError::not_found("part"))?;
                    state.hls.parts_served.fetch_add(1, Ordering::Relaxed);
                    Ok(answer(
                        &headers,
                        format!("\"p{epoch}.{number}\""),
                        part.chunk.made,
                        IMMUTABLE,
                        MEDIA_TYPE,
                        part.chunk.bytes.clone(),
                    ))
                }
            }
        }
        .await,
    )
}

/// The segment being made, sent as it is made: its parts so far, then each part as it
/// completes, until the segment does. Should the window lose it (HLS stopped) or the segment
/// not end within three target durations, the answer breaks off instead of ending, so no
/// cache keeps half a segment.
fn growing_segment(
    state: &Hls,
    (hls, rendition): (Arc<HlsStream>, Rendition),
    request: &HeaderMap,
    (epoch, msn): (u64, u64),
    started: SystemTime,
) -> Response {
    let etag = format!("\"s{epoch}.{msn}\"");
    if held(request, &etag) {
        return answer(request, etag, started, IMMUTABLE, MEDIA_TYPE, Body::empty());
    }
    struct Sending {
        rx: tokio::sync::watch::Receiver<Published>,
        sent: usize,
        ready: std::collections::VecDeque<Bytes>,
        done: bool,
        deadline: tokio::time::Instant,
        _waiting: Blocking,
    }
    let waiting = match Blocking::new(state) {
        Ok(waiting) => waiting,
        Err(refused) => return refused.into_response(),
    };
    let track = hls.track(rendition);
    let target = track.snapshot().target_duration.max(1);
    let sending = Sending {
        rx: track.subscribe(),
        sent: 0,
        ready: Default::default(),
        done: false,
        deadline: tokio::time::Instant::now() + Duration::from_secs(3 * target),
        _waiting: waiting,
    };
    let body = futures_util::stream::unfold(sending, move |mut s| async move {
        loop {
            if let Some(bytes) = s.ready.pop_front() {
                s.sent += bytes.len();
                return Some((Ok(bytes), s));
            }
            if s.done {
                return None;
            }
            let now = s.rx.borrow_and_update().clone();
            match now.segment_from(msn, s.sent).filter(|_| now.epoch == epoch) {
                Some((rest, complete)) => {
                    s.ready.extend(rest.into_iter().filter(|b| !b.is_empty()));
                    s.done = complete;
                    if !s.ready.is_empty() || s.done {
                        continue;
                    }
                }
                None => return Some((Err(std::io::Error::other("HLS stopped")), s)),
            }
            let changed = tokio::time::timeout_at(s.deadline, s.rx.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let e = std::io::Error::other("the segment did not end in time");
                return Some((Err(e), s));
            }
        }
    });
    answer(
        request,
        etag,
        started,
        IMMUTABLE,
        MEDIA_TYPE,
        Body::from_stream(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_names_parse_and_nothing_else_does() {
        assert_eq!(
            parse_media("s1796158508.1796158600.ts"),
            Some(Media::Segment {
                epoch: 1796158508,
                msn: 1796158600
            })
        );
        assert_eq!(
            parse_media("p1796158508.42.ts"),
            Some(Media::Part {
                epoch: 1796158508,
                number: 42
            })
        );
        for bad in [
            "s.ts",
            "p1.ts",
            "p1..ts",
            "x1.ts",
            "s1",
            "s-1.ts",
            "p1.2.3.ts",
            "",
            "s99999999999999999999999.ts",
            "s1.99999999999999999999999.ts",
            "é1.2.ts",
            "s1.2",
        ] {
            assert_eq!(parse_media(bad), None, "{bad}");
        }
    }
}
