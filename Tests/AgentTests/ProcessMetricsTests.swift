import Agent
import Foundation
import Shipping
import Testing

/// The standard process metrics, from this test process's own /proc/self.
@Suite("Process metrics")
struct ProcessMetricsTests {
    @Test("/proc/<pid>/stat: fields counted after the last parenthesis of the command")
    func parseStat() {
        let text =
            "4242 (pg (node) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 120 30 0 0 20 0 9 0 98765 1234567890 4321 "
            + "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        let stat = ProcessMetrics.parseStat(text)
        #expect(
            stat
                == ProcessMetrics.Stat(
                    cpuTicks: 150, startTicks: 98765, virtualBytes: 1_234_567_890, residentPages: 4321))
        #expect(ProcessMetrics.parseStat("4242 (truncated) S 1 2") == nil)
        #expect(ProcessMetrics.parseStat("no parenthesis") == nil)
        #expect(ProcessMetrics.parseBootTime("cpu  1 2 3\nbtime 1764000000\nprocesses 5\n") == 1_764_000_000)
        #expect(ProcessMetrics.parseBootTime("cpu 1\n") == nil)
    }

    @Test("registered metrics read this process: resident memory, start time, open descriptors")
    func ownProcess() throws {
        let metrics = MetricsRegistry()
        ProcessMetrics.register(metrics)
        let before = metrics.value("process_open_fds")
        #expect(before == 0)
        let text = metrics.render()
        for name in [
            "process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
            "process_open_fds", "process_max_fds", "process_virtual_memory_bytes",
        ] {
            #expect(text.contains("# TYPE \(name) "), "\(name)")
            #expect(metrics.has(name), "\(name)")
        }
        #expect(metrics.value("process_resident_memory_bytes") > 1_048_576)
        // Only bounds that always hold: after 2001, not in the future.
        let now = Date().timeIntervalSince1970
        let start = metrics.value("process_start_time_seconds")
        #expect(start > 1_000_000_000 && start <= now + 1, "\(start)")
        // stdin, stdout, stderr and the file opened here at least (other tests open and close
        // theirs meanwhile: no exact count).
        let fd = open("/proc/self/stat", O_RDONLY)
        defer { close(fd) }
        _ = metrics.render()
        #expect(metrics.value("process_open_fds") >= 4)
    }
}
