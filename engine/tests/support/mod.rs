//! What the engine's property-test binaries share: the proptest settings they all run with.

use proptest::prelude::ProptestConfig;

/// 1,000 cases per property, the rest proptest's defaults (seeded, with regressions files).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1_000,
        ..ProptestConfig::default()
    }
}
