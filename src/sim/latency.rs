//! How long messages take in virtual time: a uniform delay range (py-dht's `delay_range`) or a
//! round-trip-time matrix between world regions, plus the cost of failures.

use std::time::Duration;

use rand::Rng;

/// Where nodes live, with the share of DHT servers in each region and the median round-trip
/// times between them.
///
/// The shares follow ProbeLab's geolocation of IPFS DHT servers (2023: about half in North
/// America, a third in Europe, an eighth in Asia); the RTTs are medians of public inter-region
/// measurements (cloud provider ping matrices, WonderNetwork), rounded.
#[derive(Clone, Debug, PartialEq)]
pub struct Regions {
    /// Region names, e.g. `eu`.
    pub names: Vec<String>,
    /// Share of nodes in each region (normalised when drawn).
    pub shares: Vec<f64>,
    /// Round-trip time between regions `i` and `j` in milliseconds (symmetric).
    pub rtt_ms: Vec<Vec<f64>>,
}

impl Regions {
    /// Six regions: North America, Europe, Asia, South America, Oceania, Africa.
    ///
    /// Shares and RTTs are fitted, not measured: with ProbeLab's geolocation shares (NA 48 %, EU
    /// 34 %) and median inter-region RTTs, a European server's retrieval p50 came out at 2× the
    /// published 0.15–0.20 s. Lookups stay in a region only when most peers are in it, so EU holds
    /// 65 % of the nodes here, and EU's RTTs are those of its best-connected hubs (Frankfurt:
    /// 10 ms within EU, 80 ms to NA's east coast, 130 ms to Mumbai). See docs/simulator.md.
    pub fn world() -> Self {
        let names = ["na", "eu", "as", "sa", "oc", "af"];
        #[rustfmt::skip]
        let rtt_ms = vec![
            //        na     eu     as     sa     oc     af
            vec![  30.0,  80.0, 170.0, 130.0, 170.0, 230.0], // na
            vec![  80.0,  10.0, 130.0, 200.0, 270.0, 150.0], // eu
            vec![ 170.0, 130.0,  70.0, 300.0, 120.0, 280.0], // as
            vec![ 130.0, 200.0, 300.0,  40.0, 300.0, 330.0], // sa
            vec![ 170.0, 270.0, 120.0, 300.0,  30.0, 380.0], // oc
            vec![ 230.0, 150.0, 280.0, 330.0, 380.0,  60.0], // af
        ];
        Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            shares: vec![0.25, 0.65, 0.07, 0.01, 0.01, 0.01],
            rtt_ms,
        }
    }

    /// The 2025 profile's seven regions, the four ProbeLab measures from first (so that
    /// `--servers 4` places one server in each): eu (eu-central-1), na-east (us-east-2), na-west
    /// (us-west-1), oc (ap-southeast-2), then as, sa, af.
    ///
    /// RTTs are medians between those cloud regions (public ping matrices), rounded, except the
    /// fitted ones: within EU 5 ms, within na-east 10 ms, EU–na-east 80 ms, EU–na-west 140 ms,
    /// na-east–na-west 40 ms (the best-connected hubs, as the 2023 fit did for EU). The shares are
    /// fitted to ProbeLab's November 2025 per-region retrieval times (docs/simulator.md).
    pub fn world_2025() -> Self {
        let names = ["eu", "na-east", "na-west", "oc", "as", "sa", "af"];
        #[rustfmt::skip]
        let rtt_ms = vec![
            //         eu  na-east na-west    oc     as     sa     af
            vec![   5.0,  80.0, 140.0, 285.0, 160.0, 200.0, 160.0], // eu
            vec![  80.0,  10.0,  40.0, 190.0, 150.0, 125.0, 235.0], // na-east
            vec![ 140.0,  40.0,  15.0, 140.0, 105.0, 175.0, 285.0], // na-west
            vec![ 285.0, 190.0, 140.0,  10.0,  95.0, 310.0, 400.0], // oc
            vec![ 160.0, 150.0, 105.0,  95.0,  60.0, 300.0, 280.0], // as
            vec![ 200.0, 125.0, 175.0, 310.0, 300.0,  30.0, 340.0], // sa
            vec![ 160.0, 235.0, 285.0, 400.0, 280.0, 340.0,  50.0], // af
        ];
        Self {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            shares: vec![0.62, 0.22, 0.06, 0.01, 0.05, 0.02, 0.02],
            rtt_ms,
        }
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no regions.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Index of the region called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The region of a fleet's `index`-th server when each fleet has `per_fleet`: the regions in
    /// turn from the first, so fleets compared side by side sit in the same regions (the
    /// simulator's and the testnet's rule).
    pub fn of_server(&self, index: usize, per_fleet: usize) -> u8 {
        ((index % per_fleet.max(1)) % self.len().max(1)) as u8
    }

    /// A region drawn by the shares.
    pub fn draw(&self, rng: &mut impl Rng) -> u8 {
        let total: f64 = self.shares.iter().sum();
        let mut point = rng.gen::<f64>() * total;
        for (index, share) in self.shares.iter().enumerate() {
            if point < *share {
                return index as u8;
            }
            point -= share;
        }
        (self.shares.len() - 1) as u8
    }

    /// Checks that the matrix is square and matches the names and shares.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.names.len();
        if n == 0 || n > usize::from(u8::MAX) {
            return Err(format!("between 1 and 255 regions are needed, not {n}"));
        }
        if self.shares.len() != n || self.rtt_ms.len() != n || self.rtt_ms.iter().any(|row| row.len() != n) {
            return Err("every region needs a share and a full row of round-trip times".to_owned());
        }
        if self.shares.iter().any(|s| !s.is_finite() || *s < 0.0) || self.shares.iter().sum::<f64>() <= 0.0 {
            return Err("region shares must be non-negative and not all zero".to_owned());
        }
        if self.rtt_ms.iter().flatten().any(|r| !r.is_finite() || *r < 0.0) {
            return Err("round-trip times must be non-negative".to_owned());
        }
        Ok(())
    }
}

/// How the delay of one request is drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum DelayModel {
    /// Uniform in `[min, max]` per request, as py-dht's `delay_range`.
    Range {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// The RTT between the two nodes' regions times a uniform jitter factor in `[1, 1 + jitter]`.
    Regions {
        /// The regions and their RTTs.
        regions: Regions,
        /// Relative jitter on top of the median RTT.
        jitter: f64,
    },
}

/// The virtual cost of requests: delays, failures and their timeouts.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyModel {
    /// Delay of one round trip.
    pub delay: DelayModel,
    /// Extra round trips to open a connection before the first request to a peer (transport,
    /// security and multiplexer handshakes; 0 with the range model keeps py-dht's semantics).
    pub connect_round_trips: f64,
    /// Share of requests that fail although the peer is up (py-dht's `error_rate`).
    pub error_rate: f64,
    /// How long a quick failure (refused, reset, no route) takes: uniform in `[min, max]`.
    pub failure_delay: (Duration, Duration),
    /// Share of failures that are silent and wait for the timeout instead (a dial to a peer
    /// behind a NAT that drops packets).
    pub timeout_share: f64,
    /// How long a silent failure takes: uniform in `[min, max]` (dial and request timeouts).
    pub timeout: (Duration, Duration),
}

/// A calibration of the simulator against published figures of the public IPFS DHT
/// (docs/simulator.md, "Calibration"), chosen with `parsec simulate --profile`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// parsec's 2023 deployment: six regions, pooled retrieval p50 ≈ 0.8 s, provide p50 8–10 s.
    #[default]
    Ipfs2023,
    /// ProbeLab's November 2025 month: eu-central-1, us-east-2, us-west-1 and ap-southeast-2;
    /// pooled retrieval p50 0.41 s, provide median 13.3 s.
    Ipfs2025,
}

impl Profile {
    /// Every profile, oldest first.
    pub const ALL: [Profile; 2] = [Self::Ipfs2023, Self::Ipfs2025];

    /// The name `--profile` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipfs2023 => "ipfs-2023",
            Self::Ipfs2025 => "ipfs-2025",
        }
    }

    /// Its delays, failures and timeouts.
    pub fn latency(self) -> LatencyModel {
        match self {
            Self::Ipfs2023 => LatencyModel::ipfs(),
            Self::Ipfs2025 => LatencyModel::ipfs_2025(),
        }
    }

    /// Its share of nodes that sit in routing tables but never answer.
    pub fn unreachable(self) -> f64 {
        match self {
            Self::Ipfs2023 => crate::sim::DEFAULT_UNREACHABLE,
            Self::Ipfs2025 => UNREACHABLE_2025,
        }
    }
}

/// The 2025 profile's share of unreachable nodes (fitted: 2025's p50s and p90s are about half
/// of 2023's, which 20 % dead entries in every table do not allow).
pub const UNREACHABLE_2025: f64 = 0.08;

parsec_kad::impl_named!(Profile, "profile");

impl LatencyModel {
    /// The 2025 profile's model (docs/simulator.md): seven regions, fitted failure costs.
    pub fn ipfs_2025() -> Self {
        Self {
            delay: DelayModel::Regions {
                regions: Regions::world_2025(),
                jitter: 0.3,
            },
            // Fitted to the published provide median (13.3 s) and p90 (37 s): with fewer
            // unreachable peers than in 2023, more of the failures left are slow ones.
            timeout_share: 0.34,
            ..Self::ipfs()
        }
    }

    /// The calibrated IPFS-like default, the 2023 profile (see `docs/simulator.md`).
    pub fn ipfs() -> Self {
        Self {
            delay: DelayModel::Regions {
                regions: Regions::world(),
                jitter: 0.3,
            },
            // parsec's servers run for weeks and keep connections open to most of the peers
            // they query; opening new ones is folded into the jitter.
            connect_round_trips: 0.0,
            error_rate: 0.0,
            failure_delay: (Duration::from_millis(100), Duration::from_secs(1)),
            timeout_share: 0.105,
            timeout: (Duration::from_secs(2), Duration::from_secs(34)),
        }
    }

    /// What the model assumes of connections, for the rows: warm when a request pays no
    /// connection set-up (connections open from earlier), cold when every request opens one.
    pub fn connections(&self) -> parsec_actors::Connections {
        if self.connect_round_trips > 0.0 {
            parsec_actors::Connections::Cold
        } else {
            parsec_actors::Connections::Warm
        }
    }

    /// Round-trip time of one request from a node in region `from` to one in region `to`.
    pub fn round_trip(&self, from: u8, to: u8, rng: &mut impl Rng) -> Duration {
        match &self.delay {
            DelayModel::Range { min, max } => {
                if max <= min {
                    *min
                } else {
                    rng.gen_range(*min..=*max)
                }
            }
            DelayModel::Regions { regions, jitter } => {
                let median = regions.rtt_ms[usize::from(from)][usize::from(to)];
                let factor = 1.0 + rng.gen::<f64>() * jitter.max(0.0);
                Duration::from_secs_f64(median * factor / 1000.0)
            }
        }
    }

    /// A failure's delay: quick, or a timeout for `timeout_share` of them.
    pub fn failure(&self, rng: &mut impl Rng) -> Duration {
        let (min, max) = if rng.gen_bool(self.timeout_share.clamp(0.0, 1.0)) {
            self.timeout
        } else {
            self.failure_delay
        };
        if max <= min {
            min
        } else {
            rng.gen_range(min..=max)
        }
    }

    /// The regions nodes are placed in (one region for the range model).
    pub fn regions(&self) -> Regions {
        match &self.delay {
            DelayModel::Regions { regions, .. } => regions.clone(),
            DelayModel::Range { .. } => Regions {
                names: vec!["all".to_owned()],
                shares: vec![1.0],
                rtt_ms: vec![vec![0.0]],
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn the_world_matrix_is_valid_and_symmetric() {
        let world = Regions::world();
        world.validate().unwrap();
        for i in 0..world.len() {
            for j in 0..world.len() {
                assert_eq!(world.rtt_ms[i][j], world.rtt_ms[j][i]);
            }
        }
    }

    #[test]
    fn delays_stay_in_their_model() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let range = LatencyModel {
            delay: DelayModel::Range {
                min: Duration::from_millis(50),
                max: Duration::from_millis(60),
            },
            ..LatencyModel::ipfs()
        };
        for _ in 0..100 {
            let d = range.round_trip(0, 0, &mut rng);
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(60));
        }
        let world = LatencyModel::ipfs();
        let eu = Regions::world().index_of("eu").unwrap() as u8;
        let d = world.round_trip(eu, eu, &mut rng);
        assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(13));
    }
}
