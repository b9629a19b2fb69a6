/// The line `pgnode check` writes on stderr while its probes observe, for a person at a
/// terminal: "observing 3 containers for 10 s… Ctrl-C to stop early". Only the text output on a
/// terminal gets it (never JSON, never a pipe or a file). Coloured (dim) and cleared when the
/// window ends, unless `NO_COLOR` is set: then plain, ended with a newline, no escape sequence at all.
public struct ObservationProgress: Sendable, Equatable {
    /// What to write when the window starts.
    public let start: String
    /// What to write when it ends: erases the line, or ends it.
    public let end: String

    /// The progress for a window of `seconds` over `containers` containers; nil when none is
    /// shown: the output is not text, stderr is not a terminal, or there is no window.
    public static func make(
        containers: Int, seconds: Double, textOutput: Bool, stderrIsTerminal: Bool, environment: [String: String]
    ) -> ObservationProgress? {
        guard textOutput, stderrIsTerminal, seconds > 0, seconds.isFinite else { return nil }
        let line = text(containers: containers, seconds: seconds)
        if TextFormatter.useColour(terminal: true, environment: environment) {
            return ObservationProgress(start: "\u{1B}[2m\(line)\u{1B}[0m", end: "\r\u{1B}[2K")
        }
        return ObservationProgress(start: line, end: "\n")
    }

    /// "observing 3 containers for 10 s… Ctrl-C to stop early" (1 container; the node when
    /// there are none).
    public static func text(containers: Int, seconds: Double) -> String {
        let what =
            switch containers {
            case ...0: "the node"
            case 1: "1 container"
            default: "\(containers) containers"
            }
        return "observing \(what) for \(duration(seconds)) s… Ctrl-C to stop early"
    }

    /// Whole seconds as an integer, others to a tenth (`10`, `1.5`, `0.3`; `0.1` at least).
    static func duration(_ seconds: Double) -> String {
        let tenths = (seconds * 10).rounded()
        guard tenths < 1e15, tenths >= 0 else { return "\(Int64(seconds.rounded()))" }
        let value = seconds > 0 ? max(1, Int64(tenths)) : 0
        return value % 10 == 0 ? "\(value / 10)" : "\(value / 10).\(value % 10)"
    }
}
