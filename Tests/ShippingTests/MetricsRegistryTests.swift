import Foundation
import Shipping
import TestSupport
import Testing

/// The hand-written Prometheus registry: label and help escaping, series removal, histograms,
/// and that what it renders is clean for Prometheus' own linter (`promtool check metrics`).
@Suite("The metrics registry")
struct MetricsRegistryTests {
    @Test("label values: backslash, double quote and line feed escaped; other bytes as they are")
    func labelEscaping() {
        let metrics = MetricsRegistry()
        metrics.declare("pgnode_test", .gauge, help: "A test.")
        metrics.set("pgnode_test", [("pod", "a\\b\"c\nd"), ("container", "pöd\tx")], 2)
        #expect(metrics.render().contains("pgnode_test{pod=\"a\\\\b\\\"c\\nd\",container=\"pöd\tx\"} 2\n"))
        // The raw value addresses the series.
        #expect(metrics.value("pgnode_test", [("pod", "a\\b\"c\nd"), ("container", "pöd\tx")]) == 2)
    }

    @Test("help texts: backslash and line feed escaped")
    func helpEscaping() {
        let metrics = MetricsRegistry()
        metrics.declare("pgnode_test", .counter, help: "one\\two\nthree \"quoted\"")
        #expect(
            metrics.render().hasPrefix("# HELP pgnode_test one\\\\two\\nthree \"quoted\"\n# TYPE pgnode_test counter\n")
        )
    }

    @Test("series removal: one series, or every series with given labels across metrics")
    func removal() {
        let metrics = MetricsRegistry()
        metrics.declare("a", .gauge, help: "a")
        metrics.declare("b", .counter, help: "b")
        metrics.set("a", [("pod", "p1"), ("check", "x")], 1)
        metrics.set("a", [("pod", "p1"), ("check", "y")], 1)
        metrics.set("a", [("pod", "p2"), ("check", "x")], 1)
        metrics.add("b", [("pod", "p1")], 5)
        metrics.remove("a", [("pod", "p2"), ("check", "x")])
        #expect(!metrics.has("a", [("pod", "p2"), ("check", "x")]))
        #expect(metrics.seriesCount("a") == 2)
        #expect(metrics.remove(matching: [("pod", "p1")]) == 3)
        #expect(metrics.seriesCount("a") == 0)
        #expect(metrics.seriesCount("b") == 0)
        #expect(metrics.remove(matching: []) == 0)
        // The families stay declared, with no series.
        #expect(metrics.render() == "# HELP a a\n# TYPE a gauge\n# HELP b b\n# TYPE b counter\n")
        // A removed counter starts again from zero.
        metrics.add("b", [("pod", "p1")], 1)
        #expect(metrics.value("b", [("pod", "p1")]) == 1)
    }

    @Test("histograms: cumulative buckets ending with +Inf, sum and count; NaN ignored")
    func histogram() {
        let metrics = MetricsRegistry()
        metrics.declareHistogram("pgnode_round_seconds", buckets: [1, 0.5, .infinity, 0.5], help: "Rounds.")
        for value in [0.1, 0.5, 0.7, 3, .nan] { metrics.observe("pgnode_round_seconds", [], value) }
        metrics.observe("pgnode_round_seconds", [("kind", "x")], 2)
        let text = metrics.render()
        #expect(
            text.contains(
                """
                pgnode_round_seconds_bucket{le="0.5"} 2
                pgnode_round_seconds_bucket{le="1"} 3
                pgnode_round_seconds_bucket{le="+Inf"} 4
                pgnode_round_seconds_sum 4.3
                pgnode_round_seconds_count 4

                """), "\(text)")
        #expect(text.contains("pgnode_round_seconds_bucket{kind=\"x\",le=\"+Inf\"} 1\n"))
        #expect(text.contains("pgnode_round_seconds_count{kind=\"x\"} 1\n"))
        // add and set leave a histogram alone.
        metrics.add("pgnode_round_seconds", [], 100)
        #expect(metrics.value("pgnode_round_seconds") == 4.3)
    }

    @Test("collectors refresh their series before each rendering")
    func collectors() {
        let metrics = MetricsRegistry()
        metrics.declare("pgnode_renders", .counter, help: "Renders.")
        metrics.onRender { $0.add("pgnode_renders") }
        _ = metrics.render()
        #expect(metrics.render().contains("pgnode_renders 2\n"))
    }

    @Test("promtool check metrics finds nothing to complain about in hostile labels and every kind")
    func promtoolClean() throws {
        let promtool = "/usr/bin/promtool"
        guard
            TestEnvironment.require(FileManager.default.isExecutableFile(atPath: promtool), "promtool (scripts/setup)")
        else { return }
        let metrics = MetricsRegistry()
        metrics.declare("pgnode_things_total", .counter, help: "Things, with a \\ and a\nline feed.")
        metrics.add("pgnode_things_total", [("pod", "we\"ird\\na\nme"), ("namespace", "")], 3)
        metrics.declare("pgnode_level", .gauge, help: "A level.")
        metrics.set("pgnode_level", [("pod", "p")], .infinity)
        metrics.set("pgnode_level", [("pod", "q")], 1e300)
        metrics.declareHistogram("pgnode_wait_seconds", buckets: [0.1, 1], help: "Waits.")
        metrics.observe("pgnode_wait_seconds", [("pod", "p")], 0.2)
        let result = try Command.run([promtool, "check", "metrics"], stdin: metrics.render())
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.isEmpty && result.stderr.isEmpty, "\(result.stdout)\(result.stderr)")
    }
}
