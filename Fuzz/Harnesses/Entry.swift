import Glibc

/// The harness that `PGNODE_FUZZ_TARGET` names, chosen once per process.
let selectedHarness: Harness = {
    let name = getenv("PGNODE_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let harness = Harness.all.first(where: { $0.name == name }) else {
        let names = Harness.all.map(\.name).joined(separator: " ")
        let message = Array("pgnode-fuzz: set PGNODE_FUZZ_TARGET to one of: \(names) (got '\(name)')\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }
    return harness
}()

/// Called once by libFuzzer before the first input. `PGNODE_FUZZ_TARGET=list` prints the
/// targets, one a line: name, longest input, what it feeds, and exits; an unknown target is refused here.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> Int32 {
    if let value = getenv("PGNODE_FUZZ_TARGET"), String(cString: value) == "list" {
        for harness in Harness.all { print("\(harness.name)\t\(harness.maxLength)\t\(harness.summary)") }
        exit(0)
    }
    _ = selectedHarness
    return 0
}

/// Called by libFuzzer for every input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selectedHarness.run(bytes)
    return 0
}
