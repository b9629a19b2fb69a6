import HostFacts
import Probes
import Resolution

/// The PostgreSQL server executables a container's postmasters run: where the query probe's USDT
/// probes go.
///
/// The file is the mapping of `<host>/proc/<postmaster>/maps` whose path is the process's
/// `exe` link (both are the kernel's path of the file, as the process sees it), named by the
/// device and inode `maps` shows. Like the C libraries (`CLibraryFiles`), it is opened inside the
/// container's root when the probe attaches, and only if it is still the mapped file. A server
/// upgraded in place (its executable deleted since it started) is left out: its path names
/// another file now.
public enum ServerExecutableFiles {
    /// The executable process `pid` runs, among its `maps` (read once by the caller), as a file
    /// to attach to; nil when its exe link cannot be read, or the file was deleted.
    public static func file(pid: Int32, maps: [MappedFile], host: HostRoot) -> LibraryFile? {
        guard let exe = try? host.readLink("proc/\(pid)/exe"), !exe.hasSuffix(" (deleted)"),
            let mapping = maps.first(where: { $0.path == exe && !$0.deleted })
        else { return nil }
        return LibraryFile(
            identity: LibraryFile.Identity(
                major: mapping.deviceMajor, minor: mapping.deviceMinor, inode: mapping.inode),
            rootPath: host.resolve("proc/\(pid)/root"), path: mapping.path)
    }
}
