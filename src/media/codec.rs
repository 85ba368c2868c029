//! Opus at 48 kHz, mono, 20 ms frames: the one audio codec a Kith call speaks (Chromium speaks
//! it too). The encoder runs once per call; each peer has its own decoder, because a decoder
//! carries the state its concealment and FEC recovery need.

use super::{FRAME, MAX_FRAME, SAMPLE_RATE};

/// The largest packet we produce or accept. Opus at 20 ms tops out far below this (510 kbit/s
/// is 1275 bytes); a bigger "packet" from the network is not Opus.
pub const MAX_PACKET: usize = 1500;

/// Voice bitrate: transparent for speech in wideband and fullband, and small enough that FEC
/// (which lowers the quality of the primary frame a little) still sounds clean.
const BITRATE: i32 = 32_000;

/// The loss the encoder plans its FEC for until told otherwise. Opus adds in-band FEC only
/// when it expects loss, so this must not be zero.
const EXPECTED_LOSS_PERCENT: i32 = 10;

#[derive(Debug, thiserror::Error)]
#[error("opus: {0}")]
pub struct CodecError(#[from] opus::Error);

pub struct Encoder {
    inner: opus::Encoder,
    out: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(BITRATE))?;
        inner.set_inband_fec(true)?;
        inner.set_packet_loss_perc(EXPECTED_LOSS_PERCENT)?;
        inner.set_dtx(true)?;
        // A call carries voice: told so, Opus stays in SILK or hybrid mode, the ones with FEC
        // (left to guess, it codes a steady tone with CELT, which has none).
        inner.set_signal(opus::Signal::Voice)?;
        Ok(Self { inner, out: vec![0; MAX_PACKET] })
    }

    /// Encodes one 20 ms frame. With DTX on, a silent frame may come out as a packet of one
    /// or two bytes (or none is needed: the caller still sends what we return, Opus decides).
    pub fn encode(&mut self, frame: &[f32; FRAME]) -> Result<&[u8], CodecError> {
        let n = self.inner.encode_float(frame, &mut self.out)?;
        Ok(&self.out[..n])
    }

    /// Plans the FEC for the loss the receivers report (0–100 %).
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner.set_packet_loss_perc(i32::from(percent.clamp(1, 100)))?;
        Ok(())
    }
}

pub struct Decoder {
    inner: opus::Decoder,
}

impl Decoder {
    pub fn new() -> Result<Self, CodecError> {
        Ok(Self { inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)? })
    }

    /// Decodes `packet` into `out`; returns the samples written (960 for the 20 ms frames we
    /// send; another sender may use 10 to 120 ms).
    pub fn decode(&mut self, packet: &[u8], out: &mut [f32; MAX_FRAME]) -> Result<usize, CodecError> {
        Ok(self.inner.decode_float(packet, out, false)?)
    }

    /// The frame *before* `next`, rebuilt from the FEC data `next` carries (or concealed, if
    /// it carries none).
    pub fn recover(&mut self, next: &[u8], out: &mut [f32; MAX_FRAME]) -> Result<usize, CodecError> {
        // Asked for one frame, libopus rebuilds exactly that many samples from the LBRR data.
        Ok(self.inner.decode_float(next, &mut out[..FRAME], true)?)
    }

    /// A concealed frame for a packet that never came.
    pub fn conceal(&mut self, out: &mut [f32; MAX_FRAME]) -> Result<usize, CodecError> {
        Ok(self.inner.decode_float(&[], &mut out[..FRAME], false)?)
    }

    /// Whether the packet can carry FEC data for the frame before it: the LBRR data lives in
    /// the SILK layer, which only SILK and hybrid packets have (TOC configurations 0–15).
    pub fn may_have_fec(packet: &[u8]) -> bool {
        packet.first().is_some_and(|toc| toc >> 3 < 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::signal::{Tone, dominant_frequency};

    #[test]
    fn a_tone_survives_the_codec() {
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut tone = Tone::new(440.0, 0.3);
        let mut decoded = Vec::new();
        for _ in 0..50 {
            let mut frame = [0.0; FRAME];
            tone.fill(&mut frame);
            let packet = enc.encode(&frame).unwrap().to_vec();
            assert!(packet.len() < 200, "{} bytes for 20 ms", packet.len());
            let mut out = [0.0; MAX_FRAME];
            assert_eq!(dec.decode(&packet, &mut out).unwrap(), FRAME);
            decoded.extend_from_slice(&out[..FRAME]);
        }
        let f = dominant_frequency(&decoded[FRAME * 10..], SAMPLE_RATE).unwrap();
        assert!((f - 440.0).abs() < 3.0, "{f}");
    }

    #[test]
    fn a_lost_frame_is_rebuilt_from_the_next_packets_fec() {
        let mut enc = Encoder::new().unwrap();
        let mut dec = Decoder::new().unwrap();
        let mut tone = Tone::new(300.0, 0.3);
        let packets: Vec<Vec<u8>> = (0..30)
            .map(|_| {
                let mut frame = [0.0; FRAME];
                tone.fill(&mut frame);
                enc.encode(&frame).unwrap().to_vec()
            })
            .collect();
        let mut out = [0.0; MAX_FRAME];
        for p in &packets[..20] {
            dec.decode(p, &mut out).unwrap();
        }
        // Packet 20 is lost: packet 21 carries it.
        assert!(Decoder::may_have_fec(&packets[21]));
        assert_eq!(dec.recover(&packets[21], &mut out).unwrap(), FRAME);
        let energy: f32 = out[..FRAME].iter().map(|s| s * s).sum::<f32>() / FRAME as f32;
        assert!(energy > 0.01, "the recovered frame is the tone, not silence ({energy})");
    }

    #[test]
    fn garbage_from_the_network_is_an_error_not_a_crash() {
        let mut dec = Decoder::new().unwrap();
        let mut out = [0.0; MAX_FRAME];
        // TOC says code 3 (arbitrary frames) with a frame count byte that cannot be.
        assert!(dec.decode(&[0xff, 0xff, 0x00], &mut out).is_err());
        let _ = dec.decode(&[0u8; 1400], &mut out);
    }
}
