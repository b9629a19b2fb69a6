/// One fuzz target: its name (`scripts/fuzz NAME`, `Fuzz/Corpus/NAME/`) and the parsers it feeds
/// each input to. A trap (overflow, index out of range, force unwrap) or a broken invariant
/// (`require`) is a crash that libFuzzer reports with the input.
struct Harness: Sendable {
    /// The target's name.
    var name: String
    /// The longest input worth trying (`-max_len`): a little more than the real files it stands for.
    var maxLength: Int
    /// What it feeds, for `scripts/fuzz --list`.
    var summary: String
    /// Feeds one input.
    var run: @Sendable ([UInt8]) -> Void

    /// Every target, in the order `scripts/fuzz all` runs them.
    static let all: [Harness] = [
        .json, .config, .guc, .title, .postmaster, .proc, .procCgroup, .maps, .mountinfo, .cgroupStat, .kernel,
        .elf, .httpDate, .spool, .runtimeState, .cpuCgroup, .otlpEnvironment, .smaps, .cpuTopology,
    ]
}

/// Stops with `message` when a parser broke a promise of its documentation: libFuzzer reports it
/// as a crash, with the input that caused it.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("invariant broken: \(message())") }
}

/// Uses `value`, so that it is computed. The optimizer may drop a computation whose result is never
/// used, and an overflow check with it (`max(0, a - b) >= 0` needs no subtraction): every result a
/// harness gets from a parser goes through here, as the agent would use it.
@inline(never) @_optimize(none)
func consume<T>(_ value: T) {}

/// The input as text, decoded the way the readers decode files (invalid UTF-8 becomes U+FFFD).
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// The input split at NUL bytes into at most `limit` parts, for targets that read several files.
func parts(_ bytes: [UInt8], limit: Int) -> [[UInt8]] {
    bytes.split(separator: 0, maxSplits: limit - 1, omittingEmptySubsequences: false).map(Array.init)
}
