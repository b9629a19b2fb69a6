import Formatters
import Testing

@Suite("ObservationProgress: check's line on a terminal during the window")
struct ObservationProgressTests {
    @Test("the text: containers counted, seconds as given, the node when there is no container")
    func text() {
        #expect(
            ObservationProgress.text(containers: 3, seconds: 10)
                == "observing 3 containers for 10 s… Ctrl-C to stop early")
        #expect(
            ObservationProgress.text(containers: 1, seconds: 30)
                == "observing 1 container for 30 s… Ctrl-C to stop early")
        #expect(
            ObservationProgress.text(containers: 0, seconds: 1.5)
                == "observing the node for 1.5 s… Ctrl-C to stop early")
        #expect(ObservationProgress.text(containers: 2, seconds: 0.25).contains("for 0.3 s…"))
        #expect(ObservationProgress.text(containers: 2, seconds: 0.01).contains("for 0.1 s…"))
        #expect(ObservationProgress.text(containers: 2, seconds: 86_400).contains("for 86400 s…"))
    }

    @Test(
        "shown only for text output with stderr on a terminal and a window",
        arguments: [
            (true, true, 10.0, true), (false, true, 10.0, false), (true, false, 10.0, false), (true, true, 0.0, false),
            (false, false, 10.0, false),
        ] as [(Bool, Bool, Double, Bool)])
    func shown(text: Bool, terminal: Bool, seconds: Double, shown: Bool) {
        let progress = ObservationProgress.make(
            containers: 3, seconds: seconds, textOutput: text, stderrIsTerminal: terminal, environment: [:])
        #expect((progress != nil) == shown)
    }

    @Test("coloured: dim, then erased; NO_COLOR: plain, ended with a newline, no escape sequence")
    func colour() throws {
        let coloured = try #require(
            ObservationProgress.make(
                containers: 3, seconds: 10, textOutput: true, stderrIsTerminal: true, environment: ["NO_COLOR": ""]))
        #expect(coloured.start == "\u{1B}[2mobserving 3 containers for 10 s… Ctrl-C to stop early\u{1B}[0m")
        #expect(coloured.end == "\r\u{1B}[2K")
        let plain = try #require(
            ObservationProgress.make(
                containers: 3, seconds: 10, textOutput: true, stderrIsTerminal: true, environment: ["NO_COLOR": "1"]))
        #expect(plain.start == "observing 3 containers for 10 s… Ctrl-C to stop early")
        #expect(plain.end == "\n")
        #expect(!(plain.start + plain.end).contains("\u{1B}"))
    }
}
