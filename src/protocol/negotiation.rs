//! SDP negotiation of one direct link: one offer in flight, later changes queued.
//!
//! Only the link's offerer (the lower identity key) ever offers, so two offers never cross
//! (there is no glare to resolve); the answerer asks for what it wants ([`LinkSignal::Media`],
//! [`LinkSignal::Restart`]) and the offerer folds every waiting change — media sections to add
//! or turn off, an ICE restart — into its next offer, made only once the previous one is
//! answered. str0m keeps one pending offer and invalidates it when another is made, so the
//! wanted state lives here and each offer is built from it against what was last agreed.
//!
//! Offers and answers carry a sequence number: a copy of an old offer (resent through the hub,
//! which does not acknowledge) gets the old answer again and changes nothing, and an answer to
//! anything but the offer in flight is ignored.

use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};

use crate::protocol::wire::{LinkSignal, MediaSet};

/// An offer not answered by then is sent again (through the hub, which may be reconnecting).
pub const OFFER_RESEND: Duration = Duration::from_secs(2);

/// The offer made and not answered yet.
struct InFlight {
    seq: u64,
    pending: SdpPendingOffer,
    signal: LinkSignal,
    resend_at: Instant,
    offered: MediaSet,
    /// Media sections this offer adds, with the mid str0m gave each.
    added: Vec<(MediaKind, Mid)>,
}

/// How many times the answerer sends a `Media` request (once, then again every
/// [`OFFER_RESEND`]) while no newer offer comes. The offerer makes no new offer for a request
/// that changes nothing, so the answerer cannot wait for one for ever.
pub const MEDIA_ASKS: u32 = 5;

/// The answerer's request for media, until a newer offer shows it arrived.
struct Asking {
    signal: LinkSignal,
    /// The last offer answered when we asked.
    after_seq: u64,
    resend_at: Instant,
    left: u32,
}

/// What an answer did to the link.
#[derive(Debug, PartialEq, Eq)]
pub enum Answered {
    /// It answered the offer in flight, which is now the agreed state.
    Agreed,
    /// A copy of an old answer, or one for no offer of ours: nothing changed.
    Stale,
}

pub struct Negotiation {
    link: u64,
    offerer: bool,
    /// Of the last offer made (offerer) or answered (answerer).
    seq: u64,
    in_flight: Option<InFlight>,
    /// An ICE restart waits for the offer in flight to be answered.
    restart_queued: bool,
    local: MediaSet,
    remote: MediaSet,
    /// What the last answered offer carried.
    agreed: MediaSet,
    audio: Option<Mid>,
    video: Option<Mid>,
    /// The answerer's last answer, for copies of the offer it answered.
    answered: Option<(u64, String)>,
    asking: Option<Asking>,
}

impl Negotiation {
    /// The offerer's first offer: the link's two data channels.
    pub fn first_offer(rtc: &mut Rtc, link: u64, channels: &[&str], now: Instant) -> Option<Self> {
        let mut api = rtc.sdp_api();
        for c in channels {
            api.add_channel(c.to_string());
        }
        let (offer, pending) = api.apply()?;
        let signal = LinkSignal::Offer { link, seq: 0, sdp: offer.to_sdp_string() };
        let in_flight = InFlight {
            seq: 0,
            pending,
            signal,
            resend_at: now + OFFER_RESEND,
            offered: MediaSet::default(),
            added: Vec::new(),
        };
        let mut n = Self::new(link, true);
        n.in_flight = Some(in_flight);
        Some(n)
    }

    pub fn answerer(link: u64) -> Self {
        Self::new(link, false)
    }

    fn new(link: u64, offerer: bool) -> Self {
        Self {
            link,
            offerer,
            seq: 0,
            in_flight: None,
            restart_queued: false,
            local: MediaSet::default(),
            remote: MediaSet::default(),
            agreed: MediaSet::default(),
            audio: None,
            video: None,
            answered: None,
            asking: None,
        }
    }

    /// The offer in flight, to send (again).
    pub fn offer_signal(&self) -> Option<LinkSignal> {
        self.in_flight.as_ref().map(|f| f.signal.clone())
    }

    /// Whether an offer waits for its answer.
    pub fn is_offering(&self) -> bool {
        self.in_flight.is_some()
    }

    /// An ICE restart is wanted; it goes in the next offer.
    pub fn queue_restart(&mut self) {
        self.restart_queued = true;
    }

    /// What we want the link to carry.
    pub fn set_local(&mut self, want: MediaSet) {
        self.local = want;
    }

    /// The answerer wants the link to carry `want`: the request for the offerer, which is sent
    /// again until a newer offer comes (at most [`MEDIA_ASKS`] times in all).
    pub fn ask(&mut self, now: Instant, want: MediaSet) -> LinkSignal {
        self.local = want;
        let signal = LinkSignal::Media { link: self.link, want };
        self.asking = Some(Asking {
            signal: signal.clone(),
            after_seq: self.seq,
            resend_at: now + OFFER_RESEND,
            left: MEDIA_ASKS - 1,
        });
        signal
    }

    /// What the answerer asked the link to carry.
    pub fn set_remote(&mut self, want: MediaSet) {
        self.remote = want;
    }

    pub fn local(&self) -> MediaSet {
        self.local
    }

    /// The section of `kind` we added, once an offer with it went out.
    pub fn mid(&self, kind: MediaKind) -> Option<Mid> {
        match kind {
            MediaKind::Audio => self.audio,
            MediaKind::Video => self.video,
        }
    }

    /// What the last answered offer carries.
    pub fn agreed(&self) -> MediaSet {
        self.agreed
    }

    /// The offerer's next offer, if a change waits and no offer is in flight: the signal, and
    /// the new ICE username fragment when it restarts ICE.
    pub fn next_offer(&mut self, rtc: &mut Rtc, now: Instant) -> Option<(LinkSignal, Option<String>)> {
        if !self.offerer || self.in_flight.is_some() {
            return None;
        }
        let want = self.local.union(self.remote);
        if want == self.agreed && !self.restart_queued {
            return None;
        }
        let mut api = rtc.sdp_api();
        let ufrag = std::mem::take(&mut self.restart_queued).then(|| api.ice_restart(true).ufrag);
        let mut added = Vec::new();
        for (kind, wanted, agreed, mid) in [
            (MediaKind::Audio, want.audio, self.agreed.audio, self.audio),
            (MediaKind::Video, want.video, self.agreed.video, self.video),
        ] {
            match (wanted, agreed, mid) {
                (true, false, None) => {
                    added.push((kind, api.add_media(kind, Direction::SendRecv, None, None, None)))
                }
                (true, false, Some(mid)) => api.set_direction(mid, Direction::SendRecv),
                // A media section stays in the SDP for ever; turning it off makes it inactive.
                (false, true, Some(mid)) => api.set_direction(mid, Direction::Inactive),
                _ => {}
            }
        }
        let (offer, pending) = api.apply()?;
        self.seq += 1;
        let signal = LinkSignal::Offer { link: self.link, seq: self.seq, sdp: offer.to_sdp_string() };
        self.in_flight = Some(InFlight {
            seq: self.seq,
            pending,
            signal: signal.clone(),
            resend_at: now + OFFER_RESEND,
            offered: want,
            added,
        });
        Some((signal, ufrag))
    }

    /// The answer to offer `seq`.
    pub fn on_answer(&mut self, rtc: &mut Rtc, seq: u64, sdp: &str) -> Result<Answered, String> {
        if self.in_flight.as_ref().is_none_or(|f| f.seq != seq) {
            return Ok(Answered::Stale);
        }
        let Some(f) = self.in_flight.take() else { return Ok(Answered::Stale) };
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("unreadable answer: {e}"))?;
        rtc.sdp_api().accept_answer(f.pending, answer).map_err(|e| format!("answer refused: {e}"))?;
        self.agreed = f.offered;
        for (kind, mid) in f.added {
            match kind {
                MediaKind::Audio => self.audio = Some(mid),
                MediaKind::Video => self.video = Some(mid),
            }
        }
        Ok(Answered::Agreed)
    }

    /// The answerer takes offer `seq`: our answer, the cached one for a copy of the offer last
    /// answered, or `None` for a copy of an older one.
    pub fn on_offer(&mut self, rtc: &mut Rtc, seq: u64, sdp: &str) -> Result<Option<LinkSignal>, String> {
        let answer = |seq, sdp| LinkSignal::Answer { link: self.link, seq, sdp };
        match &self.answered {
            Some((last, answer_sdp)) if *last == seq => return Ok(Some(answer(seq, answer_sdp.clone()))),
            Some((last, _)) if *last > seq => return Ok(None),
            _ => {}
        }
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("unreadable offer: {e}"))?;
        let answer_sdp =
            rtc.sdp_api().accept_offer(offer).map_err(|e| format!("offer refused: {e}"))?.to_sdp_string();
        self.seq = seq;
        self.answered = Some((seq, answer_sdp.clone()));
        if self.asking.as_ref().is_some_and(|a| seq > a.after_seq) {
            self.asking = None;
        }
        Ok(Some(answer(seq, answer_sdp)))
    }

    /// The offer in flight, or the answerer's media request, when it is due to be sent again.
    pub fn due_resend(&mut self, now: Instant) -> Option<LinkSignal> {
        if let Some(f) = self.in_flight.as_mut().filter(|f| now >= f.resend_at) {
            f.resend_at = now + OFFER_RESEND;
            return Some(f.signal.clone());
        }
        let a = self.asking.as_mut().filter(|a| now >= a.resend_at)?;
        let signal = a.signal.clone();
        a.left -= 1;
        a.resend_at = now + OFFER_RESEND;
        if a.left == 0 {
            self.asking = None;
        }
        Some(signal)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let offer = self.in_flight.as_ref().map(|f| f.resend_at);
        offer.into_iter().chain(self.asking.as_ref().map(|a| a.resend_at)).min()
    }
}
