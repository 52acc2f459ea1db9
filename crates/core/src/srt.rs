//! The SRT `streamid` a publisher sends: the stream key, plain (`KEY`) or in the SRT Access
//! Control form (`#!::r=KEY,m=publish`), which Larix Broadcaster and OBS write.

/// Why a stream id names no stream key to publish with, in words the publisher may see.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamIdError {
    #[error("no streamid: publish to srt://HOST:PORT?streamid=STREAM_KEY")]
    Missing,
    #[error("the streamid's access control names no resource (r=STREAM_KEY)")]
    NoResource,
    #[error("mode m={0} is not served: this port takes publishers (m=publish)")]
    Mode(String),
}

/// The stream key in `stream_id`.
pub fn stream_key(stream_id: &str) -> Result<&str, StreamIdError> {
    let stream_id = stream_id.trim();
    let Some(pairs) = stream_id.strip_prefix("#!::") else {
        return if stream_id.is_empty() {
            Err(StreamIdError::Missing)
        } else {
            Ok(stream_id)
        };
    };
    let mut resource = None;
    for pair in pairs.split(',') {
        match pair.split_once('=') {
            Some(("r", value)) if !value.is_empty() => resource = Some(value),
            Some(("m", mode)) if mode != "publish" => {
                return Err(StreamIdError::Mode(mode.chars().take(16).collect()));
            }
            _ => {}
        }
    }
    resource.ok_or(StreamIdError::NoResource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_access_control_stream_ids_name_the_key() {
        assert_eq!(stream_key("abc123"), Ok("abc123"));
        assert_eq!(stream_key("#!::r=abc123,m=publish"), Ok("abc123"));
        assert_eq!(stream_key("#!::u=host,r=abc123"), Ok("abc123"));
        assert_eq!(stream_key(""), Err(StreamIdError::Missing));
        assert_eq!(stream_key("#!::m=publish"), Err(StreamIdError::NoResource));
        assert_eq!(
            stream_key("#!::r=abc123,m=request"),
            Err(StreamIdError::Mode("request".into()))
        );
    }
}
