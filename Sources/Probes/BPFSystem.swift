import CLibBPF
import Glibc

/// System-wide BPF state: the programs loaded in the kernel.
public enum BPFSystem {
    /// A loaded program as the kernel reports it.
    public struct ProgramInfo: Sendable, Equatable {
        /// The kernel's id.
        public var id: UInt32
        /// The (at most 15-character) name.
        public var name: String
    }

    /// The info of the program behind `fd`.
    static func programInfo(fd: Int32) -> ProgramInfo? {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &length) == 0 else { return nil }
        let name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        return ProgramInfo(id: info.id, name: name)
    }

    /// Every program loaded in the kernel (needs CAP_SYS_ADMIN); nil when they cannot be listed.
    public static func loadedPrograms() -> [ProgramInfo]? {
        var result: [ProgramInfo] = []
        var id: UInt32 = 0
        while true {
            var next: UInt32 = 0
            if bpf_prog_get_next_id(id, &next) != 0 {
                if errno == ENOENT { break }
                return nil
            }
            id = next
            let fd = bpf_prog_get_fd_by_id(id)
            if fd < 0 { continue }  // unloaded meanwhile
            defer { close(fd) }
            if let info = programInfo(fd: fd) { result.append(info) }
        }
        return result
    }

    /// The prefix of every pgnode program name.
    public static let programPrefix = "pgn_"
}
