import Formatters
import Foundation
import PGNodeModel
import Testing

@Suite("Text and NDJSON output")
struct FormatterTests {
    func finding(_ check: String, _ severity: Severity, container: String?, evidence: JSONObject = [:]) -> Finding {
        let resource =
            container.map {
                ResourceAttributes(
                    nodeName: "n1", containerID: $0, containerRuntime: "containerd", podName: "db-0", podUID: "u",
                    namespace: "prod", containerName: "postgres")
            } ?? ResourceAttributes(nodeName: "n1")
        return Finding(
            observation: Observation(
                check: check, severity: severity, summary: "\(check) says so.", evidence: evidence),
            resource: resource, windowStart: Timestamp(nanoseconds: 0), time: Timestamp(nanoseconds: 0))
    }

    @Test("NDJSON: one parseable object per line")
    func ndjson() throws {
        let text = NDJSONFormatter().format([
            finding("a.b", .ok, container: nil), finding("c.d", .warning, container: "x"),
        ])
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        for line in lines { _ = try JSONParser.parse(String(line)) }
        #expect(text.hasSuffix("\n"))
    }

    @Test("text groups by container with the node first, and has no colour codes off a terminal")
    func grouping() {
        let c = String(repeating: "c", count: 64)
        let text = TextFormatter(colour: false).format([
            finding("shm.size", .critical, container: c), finding("kernel.btf", .ok, container: nil),
            finding("shm.enospc", .ok, container: c),
        ])
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0] == "node n1")
        #expect(text.contains("container cccccccccccc pod prod/db-0 (postgres) [containerd] on n1"))
        #expect(!text.contains("\u{1B}["))
        let shmSize = text.range(of: "shm.size")!.lowerBound
        let shmEnospc = text.range(of: "shm.enospc")!.lowerBound
        #expect(shmSize < shmEnospc)
        #expect(TextFormatter(colour: true).format([finding("a", .critical, container: nil)]).contains("\u{1B}[1;31m"))
    }

    @Test("histograms are drawn as BCC's print_log2_hist draws them")
    func histogram() {
        let text = TextFormatter.drawHistogram(
            [(4096, 8191, 144), (8192, 16383, 222)], unit: "usecs")
        let lines = text.split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].contains(": count     distribution"))
        #expect(lines[1].contains("4096 -> 8191"))
        #expect(lines[2].hasSuffix("|****************************************|"))
        #expect(lines[1].contains("|**************************              |"))
        // Columns line up.
        #expect(
            lines[1].firstIndex(of: "|").map { lines[1].distance(from: lines[1].startIndex, to: $0) }
                == lines[2].firstIndex(of: "|").map { lines[2].distance(from: lines[2].startIndex, to: $0) })
    }

    @Test("histogram evidence is drawn in text output")
    func histogramEvidence() {
        let h = Log2Histogram(counts: [0, 0, 4, 9])
        let text = TextFormatter(colour: false).format([
            finding("blkio.noise", .warning, container: "x", evidence: ["noise_latency_us": h.json])
        ])
        #expect(text.contains("noise_latency_us:"))
        #expect(text.contains("usecs"))
        #expect(text.contains("8 -> 15"))
    }

    @Test("byte counts get a human size")
    func bytes() {
        #expect(TextFormatter.humanBytes(67_108_864) == "64.0 MiB")
        #expect(TextFormatter.humanBytes(1536) == "1.5 KiB")
        #expect(TextFormatter.humanBytes(12) == "12 B")
    }
}

@Suite("Per-process lines")
struct PerProcessTextTests {
    @Test("by_pid prints as the BCC tools do: [pid] postgres: role 928K")
    func byPid() {
        let evidence: JSONObject = [
            "by_pid": .array([
                .object([
                    "pid": 7382, "role": "checkpointer", "reclaimed_bytes": .int(928 * 1024), "stall_ns": 2_500_000,
                    "events": 3,
                ])
            ])
        ]
        let finding = Finding(
            observation: Observation(check: "memory.reclaim", severity: .warning, summary: "s", evidence: evidence),
            resource: ResourceAttributes(nodeName: "n"), windowStart: Timestamp(nanoseconds: 0),
            time: Timestamp(nanoseconds: 0))
        let text = TextFormatter(colour: false).format([finding])
        #expect(text.contains("[7382] postgres: checkpointer 928K  stalled 2.5 ms in 3 pass(es)"))
    }

    @Test("by_pid of writeback.throttle: time paused and pauses, the pid in the container")
    func byPidPaused() {
        let evidence: JSONObject = [
            "by_pid": .array([
                .object([
                    "pid": 4242, "role": "client backend", "container_pid": 31, "command": "postgres", "pauses": 57,
                    "paused_ns": 912_000_000, "max_pause_ns": 40_000_000,
                ])
            ])
        ]
        let finding = Finding(
            observation: Observation(check: "writeback.throttle", severity: .warning, summary: "s", evidence: evidence),
            resource: ResourceAttributes(nodeName: "n"), windowStart: Timestamp(nanoseconds: 0),
            time: Timestamp(nanoseconds: 0))
        let text = TextFormatter(colour: false).format([finding])
        #expect(
            text.contains(
                "[4242] postgres: client backend  paused 912.0 ms in 57 pause(s)  (pid 31 in the container)\n"),
            "\(text)")
    }

    @Test("cpu.migrations' per_role: one line per role with its counts")
    func perRole() {
        let evidence: JSONObject = [
            "per_role": .array([
                .object([
                    "role": "client backend", "processes": 8, "migrations": 1234, "migrations_per_second": 308.5,
                    "cross_llc": 3, "cross_numa": 0,
                ])
            ])
        ]
        let finding = Finding(
            observation: Observation(check: "cpu.migrations", severity: .info, summary: "s", evidence: evidence),
            resource: ResourceAttributes(nodeName: "n"), windowStart: Timestamp(nanoseconds: 0),
            time: Timestamp(nanoseconds: 0))
        let text = TextFormatter(colour: false).format([finding])
        #expect(
            text.contains("client backend (8 process(es)): 1234 migrations  cross-LLC 3  cross-NUMA 0"), "\(text)")
    }

    @Test("query.latency's time_share as percentages, its slowest one line each")
    func queryLatency() {
        let shares: JSONValue = .object([
            "on_cpu": .double(0.341), "cpu_wait": .double(0.659), "io_wait": .int(0), "lock_wait": .int(0),
            "other": .int(0),
        ])
        let evidence: JSONObject = [
            "time_share": shares,
            "slowest": .array([
                .object([
                    "duration_us": 73115, "pid": 28806, "container_pid": 48, "role": "client backend",
                    "protocol": "extended", "time_share": shares, "reclaim_ns": 0, "text": .null,
                ]),
                .object([
                    "duration_us": 900, "pid": 7, "container_pid": .null, "role": .null, "protocol": "simple",
                    "time_share": shares, "reclaim_ns": 0, "text_sha256": "0123456789abcdef",
                ]),
            ]),
        ]
        let finding = Finding(
            observation: Observation(check: "query.latency", severity: .warning, summary: "s", evidence: evidence),
            resource: ResourceAttributes(nodeName: "n"), windowStart: Timestamp(nanoseconds: 0),
            time: Timestamp(nanoseconds: 0))
        let text = TextFormatter(colour: false).format([finding])
        #expect(
            text.contains("time_share: on_cpu 34.1 %  cpu_wait 65.9 %  io_wait 0 %  lock_wait 0 %  other 0 %"),
            "\(text)")
        #expect(
            text.contains(
                "73.1 ms  [28806] client backend (pid 48 in the container) extended  on_cpu 34.1 %  cpu_wait 65.9 %"),
            "\(text)")
        #expect(text.contains("900.0 µs  [7] (unknown) simple  on_cpu 34.1 %"), "\(text)")
        #expect(text.contains("sha256:0123456789abcdef"), "\(text)")
    }

    @Test("by_pid with a command and a pid in the container; a process that is not the server's")
    func byPidNamed() {
        let evidence: JSONObject = [
            "by_pid": .array([
                .object([
                    "pid": 27627, "ns_pid": 15, "command": "postgres", "role": "client backend",
                    "reclaimed_bytes": .int(647_492 * 1024), "stall_ns": 495_489_992, "events": 322,
                ]),
                .object([
                    "pid": 27700, "ns_pid": .null, "command": "sh", "role": .null, "reclaimed_bytes": 8192,
                    "stall_ns": 1000, "events": 1,
                ]),
            ])
        ]
        let finding = Finding(
            observation: Observation(check: "memory.reclaim", severity: .warning, summary: "s", evidence: evidence),
            resource: ResourceAttributes(nodeName: "n"), windowStart: Timestamp(nanoseconds: 0),
            time: Timestamp(nanoseconds: 0))
        let text = TextFormatter(colour: false).format([finding])
        #expect(
            text.contains(
                "[27627] postgres: client backend 647492K  stalled 495.5 ms in 322 pass(es)  (pid 15 in the container)\n"
            ))
        #expect(text.contains("[27700] sh 8K  stalled 0.0 ms in 1 pass(es)\n"))
    }
}

extension FormatterTests {
    @Test("settings one a line, durations humanised, remedy lines under the remedy, bpf.support brief")
    func readable() {
        let settings: JSONObject = [
            "work_mem_bytes": ["value": .int(64 << 20), "source": "command line"],
            "dynamic_shared_memory_type": ["value": "posix", "source": "default"],
        ]
        var shm = finding(
            "shm.size", .critical, container: String(repeating: "a", count: 64),
            evidence: ["settings": .object(settings), "stall_ns": .int(337_643_791)])
        shm.observation.remedy = "Mount it:\n  volumes: [x]\nOr need less."
        let text = TextFormatter(colour: false).format([shm])
        #expect(text.contains("      settings:\n        work_mem = 64.0 MiB  (command line)\n"), "\(text)")
        #expect(text.contains("        dynamic_shared_memory_type = posix  (default)\n"))
        #expect(text.contains("      stall_ns: 337.6 ms\n"))
        #expect(text.contains("      remedy: Mount it:\n                volumes: [x]\n              Or need less.\n"))
        #expect(TextFormatter.humanDuration(1500, unit: "us") == "1.5 ms")
        #expect(TextFormatter.humanDuration(999, unit: "ns") == "999 ns")

        let bpf = finding("bpf.support", .ok, container: nil, evidence: ["kernel_btf": .bool(true)])
        #expect(!TextFormatter(colour: false).format([bpf]).contains("kernel_btf"))
        #expect(TextFormatter(colour: false, verbose: true).format([bpf]).contains("kernel_btf: true"))
    }

    @Test("NO_COLOR set to anything but empty turns colour off; off a terminal there is none")
    func noColor() {
        #expect(TextFormatter.useColour(terminal: true, environment: [:]))
        #expect(TextFormatter.useColour(terminal: true, environment: ["NO_COLOR": ""]))
        #expect(!TextFormatter.useColour(terminal: true, environment: ["NO_COLOR": "1"]))
        #expect(!TextFormatter.useColour(terminal: false, environment: [:]))
    }

    @Test("cpu.contention: neighbours and per-role wait one a line, most first, as a person reads them")
    func cpuContention() {
        let evidence: JSONObject = [
            "neighbours": .array([
                .object([
                    "cgroup": "memory:/kubepods/burstable/podu/abc", "container.id": "abcdef0123456789",
                    "k8s.pod.name": "hog-0", "k8s.namespace.name": "batch", "cpu_seconds_taken": .double(4.518),
                ]),
                .object([
                    "cgroup": "memory:/", "container.id": .null, "k8s.pod.name": .null, "k8s.namespace.name": .null,
                    "cpu_seconds_taken": .double(0.02),
                ]),
            ]),
            "per_role": .array([
                .object([
                    "role": "client backend", "processes": 1, "run_seconds": .double(2.913),
                    "wait_seconds": .double(2.8), "wait_share": .double(0.4901),
                ])
            ]),
        ]
        let text = TextFormatter(colour: false).format([
            finding("cpu.contention", .critical, container: "c1", evidence: evidence)
        ])
        #expect(
            text.contains("        4.52 s taken  pod batch/hog-0  memory:/kubepods/burstable/podu/abc\n"), "\(text)")
        #expect(text.contains("        0.02 s taken  -  memory:/\n"), "\(text)")
        #expect(text.contains("        client backend ×1  ran 2.91 s  waited 2.8 s (49.0 %)\n"), "\(text)")
    }
}
