import Formatters
import Testing

@Suite("text output of histograms whose counts come from BPF maps")
struct HugeHistogramTests {
    @Test("counts near 2^64 draw bars, never overflow")
    func hugeCounts() {
        let text = TextFormatter.drawHistogram(
            [(low: 0, high: 1, count: .max), (low: 2, high: 3, count: .max / 2), (low: 4, high: 7, count: 1)],
            unit: "usecs")
        let bars = text.split(separator: "\n").dropFirst().map { $0.filter { $0 == "*" }.count }
        #expect(bars == [40, 20, 1])
    }
}
