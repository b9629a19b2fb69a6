import PGNodeModel

/// Renders findings for a person: grouped by container, node-level first, with severities
/// coloured only when writing to a terminal and histograms drawn as the BCC tools draw them.
/// Settings print one a line (`work_mem = 32.0 MiB  (command line)`), durations in the unit a
/// person reads (`stall_ns: 337.6 ms`), a remedy's continuation lines under its first.
public struct TextFormatter: Sendable {
    /// Whether to use ANSI colours.
    public var colour: Bool
    /// Whether to print every detail: without it, a `bpf.support` where every probe runs is one line.
    public var verbose: Bool

    /// A formatter; `colour` should be true only when the output is a terminal and `NO_COLOR`
    /// is unset (see `useColour(terminal:environment:)`).
    public init(colour: Bool, verbose: Bool = false) {
        self.colour = colour
        self.verbose = verbose
    }

    /// Whether to colour: on a terminal, unless `NO_COLOR` is set to anything but the empty
    /// string (https://no-color.org).
    public static func useColour(terminal: Bool, environment: [String: String]) -> Bool {
        terminal && (environment["NO_COLOR"] ?? "").isEmpty
    }

    /// The text for `findings`.
    public func format(_ findings: [Finding]) -> String {
        var groups: [(key: String, findings: [Finding])] = []
        for finding in findings {
            let key = finding.resource.containerID ?? ""
            if let index = groups.firstIndex(where: { $0.key == key }) {
                groups[index].findings.append(finding)
            } else {
                groups.append((key, [finding]))
            }
        }
        groups.sort { ($0.key.isEmpty ? 0 : 1) < ($1.key.isEmpty ? 0 : 1) }
        var out = ""
        for (index, group) in groups.enumerated() {
            if index > 0 { out += "\n" }
            out += heading(for: group.findings[0].resource) + "\n"
            for finding in group.findings { out += render(finding) }
        }
        return out
    }

    func heading(for resource: ResourceAttributes) -> String {
        guard let id = resource.containerID else { return bold("node \(resource.nodeName)") }
        var parts = ["container \(id.prefix(12))"]
        if let ns = resource.namespace, let pod = resource.podName {
            parts.append("pod \(ns)/\(pod)")
        } else if let pod = resource.podName {
            parts.append("pod \(pod)")
        }
        if let name = resource.containerName { parts.append("(\(name))") }
        if let runtime = resource.containerRuntime { parts.append("[\(runtime)]") }
        parts.append("on \(resource.nodeName)")
        return bold(parts.joined(separator: " "))
    }

    func render(_ finding: Finding) -> String {
        let label = finding.severity.rawValue.uppercased()
        let padded = label + String(repeating: " ", count: max(0, 11 - label.count))
        var out = "  \(paint(padded, finding.severity)) \(finding.check): \(finding.observation.summary)\n"
        // Every probe runs: the summary says so; the environment's detail only when asked.
        let brief = finding.check == "bpf.support" && finding.severity == .ok && !verbose
        if !brief {
            for member in finding.observation.evidence.members {
                out += renderEvidence(key: member.key, value: member.value, indent: "      ")
            }
        }
        if !finding.observation.remedy.isEmpty {
            out += Self.indentedRemedy(finding.observation.remedy, indent: "      ")
        }
        return out
    }

    /// `remedy: <first line>`, and every further line of it aligned under the first.
    static func indentedRemedy(_ remedy: String, indent: String) -> String {
        let lines = remedy.split(separator: "\n", omittingEmptySubsequences: false)
        let under = indent + String(repeating: " ", count: "remedy: ".count)
        var out = indent + "remedy: " + (lines.first.map(String.init) ?? "") + "\n"
        for line in lines.dropFirst() { out += under + line + "\n" }
        return out
    }

    /// Settings as `name = value  (source)`, one a line; `_bytes` values with a human size.
    static func renderSettings(_ settings: JSONObject, indent: String) -> String {
        var out = indent + "settings:\n"
        for member in settings.members {
            var name = member.key
            let bytes = name.hasSuffix("_bytes")
            if bytes { name.removeLast("_bytes".count) }
            guard let setting = member.value.objectValue else {
                out += indent + "  \(name) = \(JSONWriter.string(member.value))\n"
                continue
            }
            let raw = setting["value"] ?? setting["text"] ?? .null
            let value: String =
                switch raw {
                case .string(let s): s
                case .int(let i) where bytes: humanBytes(i)
                default: JSONWriter.string(raw)
                }
            let source = setting["source"]?.stringValue.map { "  (\($0))" } ?? ""
            let invalid = setting["reason"]?.stringValue.map { "  invalid: \($0)" } ?? ""
            out += indent + "  \(name) = \(value)\(source)\(invalid)\n"
        }
        return out
    }

    /// A duration of `value` in `unit` (`ns`, `us`, `ms`) as a person reads it: `337.6 ms`.
    public static func humanDuration(_ value: Int64, unit: String) -> String {
        let scale: Double =
            switch unit {
            case "ns": 1
            case "us": 1e3
            default: 1e6
            }
        let ns = Double(value) * scale
        let (amount, name): (Double, String) =
            abs(ns) >= 1e9
            ? (ns / 1e9, "s") : abs(ns) >= 1e6 ? (ns / 1e6, "ms") : abs(ns) >= 1e3 ? (ns / 1e3, "µs") : (ns, "ns")
        if name == "ns" { return "\(value) ns" }
        return "\((amount * 10).rounded() / 10) \(name)"
    }

    func renderEvidence(key: String, value: JSONValue, indent: String) -> String {
        if let buckets = Log2Histogram.buckets(from: value) {
            return indent + "\(key):\n" + Self.drawHistogram(buckets, unit: unit(of: key), indent: indent + "  ")
        }
        if key == "by_pid", let items = value.arrayValue, !items.isEmpty {
            // As BCC's per-process tools print: `[7382] postgres: checkpointer 928K`.
            var out = indent + "\(key):\n"
            for item in items {
                let pid = item["pid"]?.intValue.map(String.init) ?? "?"
                // `command: role` for the server's processes, the bare command for others; items
                // without a command (older evidence) are PostgreSQL's when they have a role.
                let command = item["command"]?.stringValue
                let role = item["role"]?.stringValue
                let name =
                    role.map { "\(command ?? "postgres"): \($0)" } ?? command ?? "(unknown)"
                let inContainer =
                    (item["ns_pid"] ?? item["container_pid"])?.intValue.map { "  (pid \($0) in the container)" } ?? ""
                if let pausedNs = item["paused_ns"]?.intValue {
                    // writeback.throttle: pauses in balance_dirty_pages.
                    let pausedMs = Double(pausedNs) / 1e6
                    let pauses = item["pauses"]?.intValue ?? 0
                    out +=
                        indent + "  [\(pid)] \(name)  paused \((pausedMs * 10).rounded() / 10) ms in \(pauses) pause(s)"
                        + inContainer + "\n"
                    continue
                }
                let kib = (item["reclaimed_bytes"]?.intValue ?? 0) / 1024
                let stallMs = Double(item["stall_ns"]?.intValue ?? 0) / 1e6
                let events = item["events"]?.intValue ?? 0
                out +=
                    indent
                    + "  [\(pid)] \(name) \(kib)K  stalled \((stallMs * 10).rounded() / 10) ms in \(events) pass(es)"
                    + inContainer + "\n"
            }
            return out
        }
        if key == "neighbours", let items = value.arrayValue, !items.isEmpty,
            items.allSatisfy({ $0["cpu_seconds_taken"] != nil })
        {
            return indent + "\(key):\n" + items.map { indent + "  " + Self.cpuNeighbour($0) + "\n" }.joined()
        }
        if key == "per_role", let items = value.arrayValue, !items.isEmpty,
            items.allSatisfy({ $0["wait_seconds"] != nil })
        {
            return indent + "\(key):\n" + items.map { indent + "  " + Self.roleWait($0) + "\n" }.joined()
        }
        if key == "per_role", let items = value.arrayValue, !items.isEmpty,
            items.allSatisfy({ $0["migrations"] != nil })
        {
            // `cpu.migrations`, one line per role as BCC's counting tools print their tables:
            // `client backend (8 processes): 1234 migrations  cross-LLC 0  cross-NUMA 0`.
            var out = indent + "\(key):\n"
            for item in items {
                let role = item["role"]?.stringValue ?? "?"
                let processes = item["processes"]?.intValue ?? 0
                out +=
                    indent + "  \(role) (\(processes) process(es)): \(item["migrations"]?.intValue ?? 0) migrations"
                    + "  cross-LLC \(item["cross_llc"]?.intValue ?? 0)  cross-NUMA \(item["cross_numa"]?.intValue ?? 0)\n"
            }
            return out
        }
        if key == "time_share", let shares = value.objectValue {
            // query.latency: `on_cpu 34.1 %  cpu_wait 65.9 %  io_wait 0 %  …`.
            return indent + "\(key): " + Self.shares(shares) + "\n"
        }
        if key == "slowest", let items = value.arrayValue, !items.isEmpty,
            items.allSatisfy({ $0["duration_us"] != nil })
        {
            // query.latency, one line per statement, slowest first:
            // `73.1 ms  [28806] client backend (pid 48 in the container) extended  cpu_wait 99.9 % …`.
            var out = indent + "\(key):\n"
            for item in items {
                let duration = Self.humanDuration(item["duration_us"]?.intValue ?? 0, unit: "us")
                let pid = item["pid"]?.intValue.map(String.init) ?? "?"
                let role = item["role"]?.stringValue ?? "(unknown)"
                let inContainer = item["container_pid"]?.intValue.map { " (pid \($0) in the container)" } ?? ""
                let proto = item["protocol"]?.stringValue ?? "?"
                let shares = item["time_share"]?.objectValue.map { "  " + Self.shares($0) } ?? ""
                let text =
                    item["text"]?.stringValue.map { "  \($0)" }
                    ?? item["text_sha256"]?.stringValue.map { "  sha256:\($0)" } ?? ""
                out += indent + "  \(duration)  [\(pid)] \(role)\(inContainer) \(proto)\(shares)\(text)\n"
            }
            return out
        }
        if case .array(let items) = value, !items.isEmpty, items.allSatisfy({ $0.objectValue != nil }) {
            var out = indent + "\(key):\n"
            for item in items { out += indent + "  - " + JSONWriter.string(item) + "\n" }
            return out
        }
        if key == "settings", let settings = value.objectValue {
            return Self.renderSettings(settings, indent: indent)
        }
        let text: String
        switch value {
        case .string(let s): text = s
        case .int(let i) where key.hasSuffix("_bytes"): text = "\(i) (\(Self.humanBytes(i)))"
        case .int(let i) where key.hasSuffix("_ns"): text = Self.humanDuration(i, unit: "ns")
        case .int(let i) where key.hasSuffix("_us"): text = Self.humanDuration(i, unit: "us")
        case .int(let i) where key.hasSuffix("_ms"): text = Self.humanDuration(i, unit: "ms")
        default: text = JSONWriter.string(value)
        }
        return indent + "\(key): \(text)\n"
    }

    /// Fractions as percentages with one decimal, in their order: `on_cpu 34.1 %  cpu_wait 65.9 %`.
    static func shares(_ shares: JSONObject) -> String {
        shares.members.map { name, value in
            let percent = ((value.doubleValue ?? 0) * 1000).rounded() / 10
            return "\(name) \(percent == percent.rounded() ? String(Int64(percent)) : String(percent)) %"
        }.joined(separator: "  ")
    }

    /// A cgroup that took CPU time from the container (`cpu.contention`), most first:
    /// `4.52 s  pod shop/hog-0  memory:/kubepods/burstable/pod…/…`.
    static func cpuNeighbour(_ item: JSONValue) -> String {
        let seconds = Self.seconds(item["cpu_seconds_taken"])
        let who: String =
            if let pod = item["k8s.pod.name"]?.stringValue {
                "pod " + (item["k8s.namespace.name"]?.stringValue.map { "\($0)/" } ?? "") + pod
            } else if let id = item["container.id"]?.stringValue {
                "container \(id.prefix(12))"
            } else {
                "-"
            }
        return "\(seconds) taken  \(who)  \(item["cgroup"]?.stringValue ?? "?")"
    }

    /// One role's run and wait (`cpu.contention`): `client backend ×3  ran 2.91 s  waited 2.80 s (49.0 %)`.
    static func roleWait(_ item: JSONValue) -> String {
        let role = item["role"]?.stringValue ?? "?"
        let processes = item["processes"]?.intValue.map { " ×\($0)" } ?? ""
        let share: String =
            switch item["wait_share"] {
            case .double(let d)?: " (\((d * 1000).rounded() / 10) %)"
            case .int(let i)?: " (\(i * 100) %)"
            default: ""
            }
        return
            "\(role)\(processes)  ran \(seconds(item["run_seconds"]))  waited \(seconds(item["wait_seconds"]))\(share)"
    }

    /// A number of seconds as `2.91 s` (`? s` when it is not a number).
    static func seconds(_ value: JSONValue?) -> String {
        switch value {
        case .double(let d)?: "\((d * 100).rounded() / 100) s"
        case .int(let i)?: "\(i) s"
        default: "? s"
        }
    }

    func unit(of key: String) -> String {
        if key.hasSuffix("_us") { return "usecs" }
        if key.hasSuffix("_ns") { return "nsecs" }
        if key.hasSuffix("_bytes") { return "bytes" }
        return "value"
    }

    /// A log2 histogram in the layout of BCC's `print_log2_hist`.
    public static func drawHistogram(
        _ buckets: [(low: UInt64, high: UInt64, count: UInt64)], unit: String, indent: String = ""
    ) -> String {
        guard !buckets.isEmpty else { return "" }
        let maxCount = buckets.map(\.count).max() ?? 1
        let width = max(String(buckets.map(\.high).max() ?? 0).count, 5)
        let header =
            String(repeating: " ", count: max(0, width * 2 + 4 - unit.count) / 2 + 1) + unit
        let headerLine = header + String(repeating: " ", count: max(1, width * 2 + 5 - header.count))
        var out = indent + headerLine + ": count     distribution\n"
        for bucket in buckets {
            // ⌈40 × count / max⌉ in doubles: counts come from BPF maps and may be near 2^64.
            let stars = maxCount == 0 ? 0 : Int((Double(bucket.count) * 40 / Double(maxCount)).rounded(.up))
            let bar = String(repeating: "*", count: min(stars, 40)) + String(repeating: " ", count: 40 - min(stars, 40))
            let count = String(bucket.count)
            out +=
                indent + leftPad(String(bucket.low), width) + " -> " + rightPad(String(bucket.high), width) + " : "
                + rightPad(count, 9) + "|" + bar + "|\n"
        }
        return out
    }

    /// 1536 → "1.5 KiB".
    public static func humanBytes(_ value: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var v = Double(value)
        var index = 0
        while abs(v) >= 1024 && index < units.count - 1 {
            v /= 1024
            index += 1
        }
        if index == 0 { return "\(value) B" }
        let rounded = (v * 10).rounded() / 10
        return "\(rounded) \(units[index])"
    }

    private static func leftPad(_ s: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - s.count)) + s
    }

    private static func rightPad(_ s: String, _ width: Int) -> String {
        s + String(repeating: " ", count: max(0, width - s.count))
    }

    private func paint(_ text: String, _ severity: Severity) -> String {
        guard colour else { return text }
        let code =
            switch severity {
            case .ok: "32"
            case .info: "36"
            case .warning: "33"
            case .critical: "1;31"
            case .unavailable: "35"
            }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    private func bold(_ text: String) -> String { colour ? "\u{1B}[1m\(text)\u{1B}[0m" : text }
}
