import Resolution

extension Harness {
    /// A process title any process in a container can set (`postgres: …`).
    static let title = Harness(
        name: "title", maxLength: 512, summary: "ProcessTitle.parse, with and without the 'postgres: ' prefix"
    ) {
        bytes in
        let title = text(bytes)
        for candidate in [title, ProcessTitle.prefix + title] {
            guard let role = ProcessTitle.parse(candidate) else { continue }
            consume(role)
            if role.kind == .parallelWorker { require((role.leaderPID ?? 0) > 0, "a parallel worker without a leader") }
        }
    }
}
