//! Length-delimited frames on the hub link: a 4-byte big-endian length, then the frame. The
//! codec refuses a length above [`MAX_FRAME`] before allocating anything for it.

use tokio_util::codec::LengthDelimitedCodec;

pub use crate::protocol::wire::MAX_FRAME;

pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().length_field_length(4).max_frame_length(MAX_FRAME).new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    #[test]
    fn oversized_length_is_refused_before_reading_body() {
        let mut c = codec();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(c.decode(&mut buf).is_err());
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn max_frame_passes() {
        let mut c = codec();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(MAX_FRAME as u32).to_be_bytes());
        buf.extend_from_slice(&vec![7u8; MAX_FRAME]);
        assert_eq!(c.decode(&mut buf).unwrap().unwrap().len(), MAX_FRAME);
    }
}
