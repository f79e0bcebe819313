//! A binary prefix trie over IP networks: longest-prefix match in at most 32 (IPv4) or 128
//! (IPv6) steps, whatever the number of networks — the threat-intelligence stage looks up
//! every IP of every alert, so a scan over the feed's networks is not an option.
//!
//! Keys are addresses left-aligned in a `u128` with a prefix length; IPv4 and IPv6 live in
//! separate tries ([`NetworkTrie`]) so `10.0.0.0/8` never matches an IPv6 address.

use std::net::IpAddr;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
struct Node<V> {
    children: [u32; 2],
    value: Option<V>,
}

/// Prefixes of up to `width` bits, each with a value.
#[derive(Debug, Clone)]
pub struct PrefixTrie<V> {
    nodes: Vec<Node<V>>,
    width: u8,
    len: usize,
}

impl<V> PrefixTrie<V> {
    /// An empty trie for `width`-bit keys (32 or 128).
    pub fn new(width: u8) -> Self {
        Self {
            nodes: vec![Node {
                children: [NONE; 2],
                value: None,
            }],
            width,
            len: 0,
        }
    }

    /// Prefixes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no prefix is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bit(&self, key: u128, depth: u8) -> usize {
        ((key >> (u32::from(self.width) - 1 - u32::from(depth))) & 1) as usize
    }

    /// Stores `value` for the `length`-bit prefix of `key` (right-aligned in `width` bits);
    /// returns the value it replaces.
    pub fn insert(&mut self, key: u128, length: u8, value: V) -> Option<V> {
        let node = self.node_for(key, length);
        let previous = self.nodes[node].value.replace(value);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// The value of the `length`-bit prefix of `key`, inserted with `V::default()` if absent.
    pub fn value_mut(&mut self, key: u128, length: u8) -> &mut V
    where
        V: Default,
    {
        let node = self.node_for(key, length);
        if self.nodes[node].value.is_none() {
            self.len += 1;
        }
        self.nodes[node].value.get_or_insert_with(V::default)
    }

    /// The node of a prefix, created (with its path) if missing.
    fn node_for(&mut self, key: u128, length: u8) -> usize {
        let length = length.min(self.width);
        let mut node = 0usize;
        for depth in 0..length {
            let bit = self.bit(key, depth);
            if self.nodes[node].children[bit] == NONE {
                self.nodes.push(Node {
                    children: [NONE; 2],
                    value: None,
                });
                self.nodes[node].children[bit] = (self.nodes.len() - 1) as u32;
            }
            node = self.nodes[node].children[bit] as usize;
        }
        node
    }

    /// Every stored prefix containing `key`, longest first, with its length.
    pub fn matches(&self, key: u128) -> Vec<(u8, &V)> {
        let mut found = Vec::new();
        let mut node = 0usize;
        let mut depth = 0u8;
        loop {
            if let Some(value) = &self.nodes[node].value {
                found.push((depth, value));
            }
            if depth == self.width {
                break;
            }
            let next = self.nodes[node].children[self.bit(key, depth)];
            if next == NONE {
                break;
            }
            node = next as usize;
            depth += 1;
        }
        found.reverse();
        found
    }

    /// The longest stored prefix containing `key`.
    pub fn longest_match(&self, key: u128) -> Option<(u8, &V)> {
        self.matches(key).into_iter().next()
    }
}

/// IPv4 and IPv6 networks.
#[derive(Debug, Clone)]
pub struct NetworkTrie<V> {
    v4: PrefixTrie<V>,
    v6: PrefixTrie<V>,
}

impl<V> Default for NetworkTrie<V> {
    fn default() -> Self {
        Self {
            v4: PrefixTrie::new(32),
            v6: PrefixTrie::new(128),
        }
    }
}

/// A network: its address (host bits cleared) and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Network {
    /// The network address.
    pub address: IpAddr,
    /// Prefix length.
    pub length: u8,
}

impl Network {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `addr/n`; clears host bits.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, Some(length.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().ok()?;
        let width = if address.is_ipv4() { 32 } else { 128 };
        let length = length.unwrap_or(width);
        if length > width {
            return None;
        }
        let key = key_of(address) & mask(width, length);
        let address = match address {
            IpAddr::V4(_) => IpAddr::from((key as u32).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(key.to_be_bytes()),
        };
        Some(Self { address, length })
    }

    /// Whether `address` lies in this network.
    pub fn contains(&self, address: IpAddr) -> bool {
        let width = if self.address.is_ipv4() { 32 } else { 128 };
        self.address.is_ipv4() == address.is_ipv4()
            && key_of(address) & mask(width, self.length) == key_of(self.address)
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.address, self.length)
    }
}

fn key_of(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(width: u8, length: u8) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if length == 0 {
        0
    } else {
        all & !((1u128 << (width - length)) - 1) & all
    }
}

impl<V> NetworkTrie<V> {
    /// Stores `value` for `network`; returns the value it replaces.
    pub fn insert(&mut self, network: Network, value: V) -> Option<V> {
        let trie = self.trie_mut(network.address);
        trie.insert(key_of(network.address), network.length, value)
    }

    /// The value of `network`, inserted with `V::default()` if absent.
    pub fn value_mut(&mut self, network: Network) -> &mut V
    where
        V: Default,
    {
        let trie = self.trie_mut(network.address);
        trie.value_mut(key_of(network.address), network.length)
    }

    /// Networks containing `address`, longest prefix first.
    pub fn matches(&self, address: IpAddr) -> Vec<(u8, &V)> {
        self.trie(address).matches(key_of(address))
    }

    /// Networks stored.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn trie(&self, address: IpAddr) -> &PrefixTrie<V> {
        if address.is_ipv4() {
            &self.v4
        } else {
            &self.v6
        }
    }

    fn trie_mut(&mut self, address: IpAddr) -> &mut PrefixTrie<V> {
        if address.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_network(rng: &mut StdRng, v6: bool) -> Network {
        // Few distinct high bits, so that networks nest and overlap often.
        if v6 {
            let address: u128 = (u128::from(rng.gen_range(0u8..4)) << 120) | rng.gen::<u128>() >> 8;
            let length = rng.gen_range(0..=128);
            Network::parse(&format!("{}/{length}", std::net::Ipv6Addr::from(address))).unwrap()
        } else {
            let address: u32 = (u32::from(rng.gen_range(0u8..4)) << 24) | rng.gen::<u32>() >> 8;
            let length = rng.gen_range(0..=32);
            Network::parse(&format!("{}/{length}", std::net::Ipv4Addr::from(address))).unwrap()
        }
    }

    #[test]
    fn longest_prefix_match_agrees_with_brute_force_on_random_networks() {
        let mut rng = StdRng::seed_from_u64(20261207);
        for v6 in [false, true] {
            let networks: Vec<Network> = (0..3000).map(|_| random_network(&mut rng, v6)).collect();
            let mut trie = NetworkTrie::default();
            for (index, network) in networks.iter().enumerate() {
                trie.insert(*network, index);
            }
            for _ in 0..20_000 {
                // Probe inside a stored network half the time, anywhere otherwise.
                let probe = if rng.gen_bool(0.5) {
                    let network = networks[rng.gen_range(0..networks.len())];
                    let width = if v6 { 128 } else { 32 };
                    let host_bits = width - network.length;
                    let host = match host_bits {
                        0 => 0,
                        128 => rng.gen::<u128>(),
                        bits => rng.gen::<u128>() & ((1u128 << bits) - 1),
                    };
                    let key = key_of(network.address) | host;
                    if v6 {
                        IpAddr::from(key.to_be_bytes())
                    } else {
                        IpAddr::from((key as u32).to_be_bytes())
                    }
                } else if v6 {
                    IpAddr::from(rng.gen::<u128>().to_be_bytes())
                } else {
                    IpAddr::from(rng.gen::<u32>().to_be_bytes())
                };
                let brute = networks
                    .iter()
                    .filter(|network| network.contains(probe))
                    .map(|network| network.length)
                    .max();
                let found = trie.matches(probe);
                assert_eq!(found.first().map(|(length, _)| *length), brute, "{probe}");
                let mut lengths: Vec<u8> = networks
                    .iter()
                    .filter(|network| network.contains(probe))
                    .map(|network| network.length)
                    .collect();
                lengths.sort_unstable_by(|a, b| b.cmp(a));
                lengths.dedup();
                let trie_lengths: Vec<u8> = found.iter().map(|(length, _)| *length).collect();
                assert_eq!(trie_lengths, lengths, "{probe}");
            }
        }
    }

    #[test]
    fn networks_parse_canonically_and_families_stay_apart() {
        let network = Network::parse("203.0.113.77/24").unwrap();
        assert_eq!(network.to_string(), "203.0.113.0/24");
        assert_eq!(
            Network::parse("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(Network::parse("8.8.8.8").unwrap().length, 32);
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("not-an-ip").is_none());
        let mut trie = NetworkTrie::default();
        trie.insert(Network::parse("0.0.0.0/0").unwrap(), "any v4");
        assert!(trie.matches("2001:db8::1".parse().unwrap()).is_empty());
        assert_eq!(trie.matches("192.0.2.1".parse().unwrap()).len(), 1);
    }
}
