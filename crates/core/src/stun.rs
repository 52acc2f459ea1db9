//! Just enough STUN (RFC 5389) to route a datagram from an address not seen yet: the local
//! part of its USERNAME attribute is the ICE ufrag of the viewer it is for.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER: usize = 20;
const USERNAME: u16 = 0x0006;

/// The ufrag this side gave in its answer, from a STUN request's `USERNAME` ("ours:theirs").
/// `None` for anything that is not a well-formed STUN message with one. Reads each attribute
/// header once: linear in the datagram's length.
pub fn local_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < HEADER || datagram[0] & 0xC0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
    let body = datagram.get(HEADER..HEADER + length)?;
    let mut pos = 0;
    while let Some(header) = body.get(pos..pos + 4) {
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let value = body.get(pos + 4..pos + 4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next().filter(|u| !u.is_empty());
        }
        // Attributes are padded to four bytes.
        pos += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// The `a=ice-ufrag` of an SDP.
pub fn sdp_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, then USERNAME (padded).
        attrs.extend([0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend(USERNAME.to_be_bytes());
        attrs.extend((username.len() as u16).to_be_bytes());
        attrs.extend(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend((attrs.len() as u16).to_be_bytes());
        m.extend(MAGIC_COOKIE);
        m.extend([7; 12]);
        m.extend(attrs);
        m
    }

    #[test]
    fn the_local_ufrag_is_read_from_a_binding_request() {
        assert_eq!(local_ufrag(&binding_request(b"abcd:wxyz")), Some("abcd"));
        assert_eq!(local_ufrag(&binding_request(b"odd:x")), Some("odd"));
    }

    #[test]
    fn anything_else_is_not_routed() {
        let good = binding_request(b"abcd:wxyz");
        // RTP/DTLS first bytes, a wrong cookie, a length past the end, cut attributes.
        let mut rtp = good.clone();
        rtp[0] = 0x80;
        let mut cookie = good.clone();
        cookie[5] = 0;
        let mut long = good.clone();
        long[3] = 0xFF;
        for bad in [&rtp[..], &cookie[..], &long[..], &good[..22], &[0u8; 3][..]] {
            assert_eq!(local_ufrag(bad), None);
        }
        assert_eq!(local_ufrag(&binding_request(b":x")), None);
    }

    #[test]
    fn the_sdp_ufrag_is_found() {
        assert_eq!(
            sdp_ufrag("v=0\r\na=ice-ufrag:Qx9z\r\na=ice-pwd:p\r\n"),
            Some("Qx9z")
        );
    }
}
