//! What a seller specifies when listing an auction, and the rules that check it.

use serde::{Deserialize, Serialize};

use crate::limits;
use crate::outcome::RejectCode;
use crate::types::{Amount, Currency, Description, Micros, Timestamp, Title};

/// A listing as the seller specifies it. Checked by [`AuctionSpec::check`] against the
/// command's timestamp on create and on edit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuctionSpec {
    pub title: Title,
    pub description: Description,
    pub currency: Currency,
    /// The lowest acceptable first bid.
    pub starting_price: Amount,
    /// Below this the auction ends unsold. Secret: only "reserve met" is ever published.
    pub reserve_price: Option<Amount>,
    /// Buying at this price ends the auction at once. See `Auction::buy_now_available`.
    pub buy_now_price: Option<Amount>,
    pub increment: IncrementPolicy,
    pub start: Timestamp,
    pub end: Timestamp,
    pub soft_close: Option<SoftClose>,
}

/// How much a bid must exceed the current price by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IncrementPolicy {
    /// The same increment at every price.
    Fixed(Amount),
    /// A price-band table: each band applies from its `from` price (inclusive) up to the next
    /// band's. The first band must start at 0 and `from` must strictly increase.
    Bands(Vec<IncrementBand>),
    /// eBay's published table, in minor units of a two-decimal currency.
    Ebay,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IncrementBand {
    pub from: Amount,
    pub increment: Amount,
}

/// eBay's bid increment table (price bands in cents → increment in cents).
pub const EBAY_BANDS: [(u64, u64); 10] = [
    (0, 5),
    (100, 25),
    (500, 50),
    (2_500, 100),
    (10_000, 250),
    (25_000, 500),
    (50_000, 1_000),
    (100_000, 2_500),
    (250_000, 5_000),
    (500_000, 10_000),
];

impl IncrementPolicy {
    /// The increment that applies at `price`.
    pub fn increment_at(&self, price: Amount) -> Amount {
        match self {
            IncrementPolicy::Fixed(step) => *step,
            IncrementPolicy::Bands(bands) => bands
                .iter()
                .rev()
                .find(|band| band.from <= price)
                .map(|band| band.increment)
                .expect("checked tables start at 0"),
            IncrementPolicy::Ebay => {
                let index = EBAY_BANDS.partition_point(|&(from, _)| from <= price.0);
                Amount(EBAY_BANDS[index - 1].1)
            }
        }
    }

    fn check(&self) -> Result<(), RejectCode> {
        match self {
            IncrementPolicy::Fixed(step) if step.in_range() => Ok(()),
            IncrementPolicy::Fixed(_) => Err(RejectCode::InvalidIncrementPolicy),
            IncrementPolicy::Ebay => Ok(()),
            IncrementPolicy::Bands(bands) => {
                let sized = !bands.is_empty() && bands.len() <= limits::INCREMENT_BANDS_MAX;
                let starts_at_zero = bands.first().is_some_and(|band| band.from == Amount(0));
                let increasing = bands.windows(2).all(|pair| pair[0].from < pair[1].from);
                let in_range = bands
                    .iter()
                    .all(|band| band.increment.in_range() && band.from.0 <= limits::AMOUNT_MAX);
                if sized && starts_at_zero && increasing && in_range {
                    Ok(())
                } else {
                    Err(RejectCode::InvalidIncrementPolicy)
                }
            }
        }
    }
}

/// Anti-sniping: a bid inside the last `window` before the end pushes the end out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SoftClose {
    pub window: Micros,
    pub mode: SoftCloseMode,
    /// Most the end may move past the scheduled end in total. `None` means the engine's
    /// `SOFT_CLOSE_TOTAL_MAX`.
    pub total_extension_max: Option<Micros>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SoftCloseMode {
    /// The end moves out by this much.
    AddToEnd(Micros),
    /// The end becomes the bid's time plus this much (if that is later).
    ResetRemaining(Micros),
}

impl SoftClose {
    pub fn total_cap(&self) -> Micros {
        self.total_extension_max
            .unwrap_or(limits::SOFT_CLOSE_TOTAL_MAX)
    }

    fn check(&self) -> Result<(), RejectCode> {
        let extension = match self.mode {
            SoftCloseMode::AddToEnd(span) | SoftCloseMode::ResetRemaining(span) => span,
        };
        let window_ok = self.window.0 > 0 && self.window <= limits::SOFT_CLOSE_WINDOW_MAX;
        let extension_ok = extension.0 > 0 && extension <= limits::SOFT_CLOSE_EXTENSION_MAX;
        let cap_ok = self.total_cap() <= limits::SOFT_CLOSE_TOTAL_MAX;
        if window_ok && extension_ok && cap_ok {
            Ok(())
        } else {
            Err(RejectCode::InvalidSoftClose)
        }
    }
}

impl AuctionSpec {
    /// Checks the listing against the limits and against `now`, the command's timestamp.
    /// The first failing rule, in the order below, names the rejection.
    pub fn check(&self, now: Timestamp) -> Result<(), RejectCode> {
        let prices_in_range = self.starting_price.in_range()
            && self.reserve_price.is_none_or(Amount::in_range)
            && self.buy_now_price.is_none_or(Amount::in_range);
        if !prices_in_range {
            return Err(RejectCode::AmountOutOfRange);
        }
        // The reserve and the buy-it-now price only make sense at or above the starting
        // price, and buying now must be able to meet the reserve.
        let reserve_ok = self
            .reserve_price
            .is_none_or(|reserve| reserve >= self.starting_price);
        let floor = self.reserve_price.unwrap_or(self.starting_price);
        let buy_now_ok = self.buy_now_price.is_none_or(|buy_now| buy_now >= floor);
        if !reserve_ok || !buy_now_ok {
            return Err(RejectCode::InvalidPrices);
        }
        self.increment.check()?;
        let window_ok = self.start < self.end
            && self.end > now
            && self.end.since(self.start) <= limits::AUCTION_DURATION_MAX
            && self.start.since(now) <= limits::START_AHEAD_MAX;
        if !window_ok {
            return Err(RejectCode::InvalidWindow);
        }
        if let Some(soft_close) = &self.soft_close {
            soft_close.check()?;
        }
        Ok(())
    }

    /// The latest the auction can end, counting every soft-close extension.
    pub fn latest_end(&self) -> Timestamp {
        let cap = self
            .soft_close
            .map_or(Micros(0), |soft_close| soft_close.total_cap());
        self.end.plus(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(from: u64, increment: u64) -> IncrementBand {
        IncrementBand {
            from: Amount(from),
            increment: Amount(increment),
        }
    }

    #[test]
    fn ebay_table_matches_the_published_bands() {
        let cases = [
            (1, 5),
            (99, 5),
            (100, 25),
            (499, 25),
            (500, 50),
            (2_499, 50),
            (2_500, 100),
            (9_999, 100),
            (10_000, 250),
            (24_999, 250),
            (25_000, 500),
            (49_999, 500),
            (50_000, 1_000),
            (99_999, 1_000),
            (100_000, 2_500),
            (249_999, 2_500),
            (250_000, 5_000),
            (499_999, 5_000),
            (500_000, 10_000),
            (limits::AMOUNT_MAX, 10_000),
        ];
        for (price, increment) in cases {
            assert_eq!(
                IncrementPolicy::Ebay.increment_at(Amount(price)),
                Amount(increment)
            );
        }
    }

    #[test]
    fn custom_bands_pick_the_last_band_at_or_below_the_price() {
        let policy = IncrementPolicy::Bands(vec![band(0, 10), band(1_000, 100)]);
        assert_eq!(policy.check(), Ok(()));
        assert_eq!(policy.increment_at(Amount(999)), Amount(10));
        assert_eq!(policy.increment_at(Amount(1_000)), Amount(100));
    }

    #[test]
    fn malformed_band_tables_are_rejected() {
        let bad = [
            vec![],
            vec![band(1, 10)],
            vec![band(0, 10), band(0, 20)],
            vec![band(0, 10), band(500, 0)],
            (0..=limits::INCREMENT_BANDS_MAX as u64)
                .map(|i| band(i * 10, 1))
                .collect(),
        ];
        for bands in bad {
            assert_eq!(
                IncrementPolicy::Bands(bands).check(),
                Err(RejectCode::InvalidIncrementPolicy)
            );
        }
        assert_eq!(
            IncrementPolicy::Fixed(Amount(0)).check(),
            Err(RejectCode::InvalidIncrementPolicy)
        );
    }

    #[test]
    fn soft_close_limits_are_enforced() {
        let ok = SoftClose {
            window: Micros::from_secs(60),
            mode: SoftCloseMode::AddToEnd(Micros::from_secs(60)),
            total_extension_max: Some(Micros::from_secs(600)),
        };
        assert_eq!(ok.check(), Ok(()));
        let zero_window = SoftClose {
            window: Micros(0),
            ..ok
        };
        assert_eq!(zero_window.check(), Err(RejectCode::InvalidSoftClose));
        let long_extension = SoftClose {
            mode: SoftCloseMode::ResetRemaining(Micros::from_secs(7200)),
            ..ok
        };
        assert_eq!(long_extension.check(), Err(RejectCode::InvalidSoftClose));
        let huge_cap = SoftClose {
            total_extension_max: Some(Micros::from_secs(30 * 86_400)),
            ..ok
        };
        assert_eq!(huge_cap.check(), Err(RejectCode::InvalidSoftClose));
    }
}
