//! What is not a person's visit: speculative loads (prefetch, prerender, link previews)
//! and known bots and crawlers. Such requests are answered as usual but record nothing;
//! they are counted by reason in `fazt_analytics_ignored_total`, with the events refused
//! for a host fazt does not serve.
//!
//! The bot list is the pattern list of the npm package `isbot` (maintained, tested against
//! large corpora of bot and browser user agents), vendored as `assets/bot-patterns.txt` and
//! refreshed with `assets/update-bot-patterns.sh`. The Rust crates that embed a list were
//! either unmaintained (`isbot`, 2022) or a keyword heuristic with a cache that can return
//! another agent's answer (`iscrawl`).

use crate::http::Request;
use crate::platform::metrics::{Collector, Counter, Desc, Kind, Source};
use std::sync::LazyLock;

const PATTERNS: &str = include_str!("../../assets/bot-patterns.txt");

/// Why a request records no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// A prefetch, prerender or preview: the person may never see the page.
    Prefetch,
    /// A known bot or crawler user agent.
    Bot,
    /// An event for a host fazt does not serve and the allowlist does not name.
    ForeignHost,
}

/// Counts of ignored requests, for `/metrics` and `/api/system/health`.
pub struct FilterStats {
    prefetch: Counter,
    bot: Counter,
    foreign_host: Counter,
}

pub static FILTER_STATS: FilterStats = FilterStats {
    prefetch: Counter::new(),
    bot: Counter::new(),
    foreign_host: Counter::new(),
};

static IGNORED: Desc = Desc::new(
    Kind::Counter,
    "fazt_analytics_ignored_total",
    "analytics.ignored",
    "Analytics requests that recorded no event, by reason: prefetch (speculative loads), \
     bot (known crawler user agents), foreign_host (a host neither served nor allowed).",
)
.labelled("reason");

impl FilterStats {
    pub fn count(&self, reason: Ignored) {
        match reason {
            Ignored::Prefetch => self.prefetch.inc(),
            Ignored::Bot => self.bot.inc(),
            Ignored::ForeignHost => self.foreign_host.inc(),
        }
    }
}

impl Source for FilterStats {
    fn collect(&self, out: &mut Collector) {
        out.int_with(&IGNORED, "prefetch", self.prefetch.get());
        out.int_with(&IGNORED, "bot", self.bot.get());
        out.int_with(&IGNORED, "foreign_host", self.foreign_host.get());
    }
}

/// Why `request` is not a visit, if it is not: checked before any event is built.
pub fn not_a_visit(request: &Request) -> Option<Ignored> {
    if is_speculative(request) {
        return Some(Ignored::Prefetch);
    }
    let agent = request.header("user-agent").unwrap_or_default();
    BOTS.is_bot(agent).then_some(Ignored::Bot)
}

/// `Sec-Purpose: prefetch` (also `prefetch;prerender`), the older `Purpose: prefetch`,
/// Safari's `X-Purpose: preview` and Firefox's `X-Moz: prefetch`.
fn is_speculative(request: &Request) -> bool {
    let says = |name: &str, word: &str| {
        request
            .header_str(name)
            .is_some_and(|v| v.to_ascii_lowercase().contains(word))
    };
    says("sec-purpose", "prefetch")
        || says("purpose", "prefetch")
        || says("x-purpose", "preview")
        || says("x-moz", "prefetch")
}

/// Builds the matcher at start, so the first request does not pay for it.
pub fn prepare() {
    log::debug!("analytics bot filter: {} patterns", BOTS.patterns);
}

static BOTS: LazyLock<BotList> = LazyLock::new(|| BotList::new(PATTERNS));

/// The patterns, compiled: those without look-around as one case-insensitive automaton
/// (the `regex` crate: linear time), the few with look-around (isbot's patterns are
/// JavaScript regular expressions) one by one with `fancy-regex`.
struct BotList {
    plain: Option<regex::bytes::Regex>,
    /// The look-around patterns without their look-arounds, as one automaton: a superset
    /// of what they match, so the slow backtracking matchers (tens of µs for the six)
    /// run only when it matches, which a browser's agent almost never does.
    lookaround_cores: Option<regex::bytes::Regex>,
    lookaround: Vec<fancy_regex::Regex>,
    /// Patterns compiled (logged at start; a test checks that none was skipped).
    patterns: usize,
}

/// One case-insensitive, ASCII-only automaton matching any of `patterns`.
fn ascii_automaton(patterns: &[String]) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(&patterns.join("|"))
        .unicode(false)
        .case_insensitive(true)
        .build()
}

/// `pattern` without its look-around groups (`(?<!x)`, `(?<=x)`, `(?!x)`, `(?=x)`): it
/// matches wherever the pattern does, and more.
fn without_lookaround(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &pattern[i..];
        let lookaround = ["(?<!", "(?<=", "(?!", "(?="]
            .iter()
            .any(|open| rest.starts_with(open));
        if !lookaround {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            if c == '\\' {
                if let Some(escaped) = rest[1..].chars().next() {
                    out.push(escaped);
                    i += escaped.len_utf8();
                }
            }
            i += c.len_utf8();
            continue;
        }
        // Skip to the group's closing parenthesis (escapes and classes do not count).
        let (mut depth, mut in_class) = (0usize, false);
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 1,
                b'[' => in_class = true,
                b']' => in_class = false,
                b'(' if !in_class => depth += 1,
                b')' if !in_class => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// A JavaScript pattern in Rust syntax: JavaScript reads a `-` after a class escape in a
/// character class (`[\w\d-.]`) as a literal dash, Rust as a bad range.
fn from_javascript(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let (mut in_class, mut chars) = (false, pattern.chars().peekable());
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => {
                let Some(escaped) = chars.next() else { break };
                out.push(escaped);
                let class_escape = "dDwWsS".contains(escaped);
                if in_class && class_escape && chars.peek() == Some(&'-') {
                    chars.next();
                    out.push_str("\\-");
                }
            }
            '[' => in_class = true,
            ']' => in_class = false,
            _ => {}
        }
    }
    out
}

impl BotList {
    fn new(text: &str) -> BotList {
        let (mut plain, mut lookaround, mut cores) = (Vec::new(), Vec::new(), Vec::new());
        let lines = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        for line in lines {
            let pattern = &from_javascript(line);
            if pattern.contains("(?<") || pattern.contains("(?!") || pattern.contains("(?=") {
                match fancy_regex::Regex::new(&format!("(?i){pattern}")) {
                    Ok(re) => {
                        lookaround.push(re);
                        cores.push(format!("(?:{})", without_lookaround(pattern)));
                    }
                    Err(e) => log::warn!("bot pattern {pattern:?} skipped: {e}"),
                }
            } else if regex::bytes::Regex::new(&format!("(?i-u){pattern}")).is_ok() {
                plain.push(format!("(?:{pattern})"));
            } else {
                log::warn!("bot pattern {pattern:?} skipped: not a valid regular expression");
            }
        }
        let (plain_count, lookaround_count) = (plain.len(), lookaround.len());
        let plain = ascii_automaton(&plain)
            .map_err(|e| log::warn!("bot patterns not compiled, no bot is filtered: {e}"))
            .ok();
        // Without the prefilter every look-around pattern runs: slower, same answers.
        let lookaround_cores = ascii_automaton(&cores).ok();
        BotList {
            plain,
            lookaround_cores,
            lookaround,
            patterns: plain_count + lookaround_count,
        }
    }

    /// isbot's rule: an empty or missing user agent is not called a bot.
    fn is_bot(&self, agent: &[u8]) -> bool {
        if agent.is_empty() {
            return false;
        }
        if self.plain.as_ref().is_some_and(|re| re.is_match(agent)) {
            return true;
        }
        if self
            .lookaround_cores
            .as_ref()
            .is_some_and(|cores| !cores.is_match(agent))
        {
            return false;
        }
        let Ok(text) = std::str::from_utf8(agent) else {
            return false;
        };
        self.lookaround
            .iter()
            .any(|re| re.is_match(text).unwrap_or(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_pattern_compiles() {
        let list = BotList::new(PATTERNS);
        assert!(list.plain.is_some());
        let total = PATTERNS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert!(total > 150, "{total} patterns");
        assert_eq!(list.patterns, total, "a pattern was skipped");
        assert_eq!(list.lookaround.len(), 6, "look-around patterns");
    }

    #[test]
    fn lookaround_cores() {
        assert_eq!(without_lookaround(r"(?<!lib)http"), "http");
        assert_eq!(
            without_lookaround(r"(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))"),
            "google"
        );
        assert_eq!(without_lookaround(r"java(?!;)"), "java");
        assert_eq!(without_lookaround(r"a(?![)])b\(c"), r"ab\(c");
    }

    #[test]
    fn javascript_class_dashes() {
        assert_eq!(from_javascript(r"[\w\d-.]+"), r"[\w\d\-.]+");
        assert_eq!(
            from_javascript(r"\d-\d"),
            r"\d-\d",
            "outside a class: as it was"
        );
        assert_eq!(from_javascript(r"[a-z]\\"), r"[a-z]\\");
    }

    #[test]
    fn bots_and_browsers() {
        let bots = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 \
             (KHTML, like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; \
             Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; \
             +https://openai.com/gptbot)",
            "curl/8.5.0",
            "python-requests/2.31.0",
        ];
        let browsers = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 \
             (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/124.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
             HeadlessChrome/120.0.0.0 Safari/537.36",
        ];
        for agent in bots {
            assert!(BOTS.is_bot(agent.as_bytes()), "a bot: {agent}");
        }
        for agent in browsers {
            let headless = agent.contains("Headless");
            assert_eq!(BOTS.is_bot(agent.as_bytes()), headless, "{agent}");
        }
        assert!(!BOTS.is_bot(b""), "no user agent is not called a bot");
        // The cost of a check, printed (never asserted): a browser's agent goes through
        // every pattern, the worst case.
        let agent = browsers[0].as_bytes();
        let start = std::time::Instant::now();
        for _ in 0..1_000 {
            std::hint::black_box(BOTS.is_bot(std::hint::black_box(agent)));
        }
        eprintln!("bot check: {:?} per browser agent", start.elapsed() / 1_000);
    }
}
