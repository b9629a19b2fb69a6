/// A kernel CPU list (`0-3,8-11`, `0,2,4`, or empty): the format of sysfs `cpulist` and
/// `shared_cpu_list` files and of the cpuset controller's `cpuset.cpus` (`bitmap_parselist`
/// in lib/bitmap.c, printed by `%*pbl`). Parsed strictly and bounded: outside text (a tenant's
/// cgroup file, a fixture) never makes it trap or allocate without limit.
public enum CPUList {
    /// CPU numbers at or above this are refused: the kernel's `NR_CPUS` is at most 8192.
    public static let maxCPU = 8192
    /// The longest list text read (every CPU of 8192 written one by one is under 40 KiB).
    public static let textLimit = 64 << 10

    /// The CPUs of `text`, ascending and without duplicates; the empty list for empty text (a
    /// memory-only NUMA node, an unset cpuset). Nil for anything else: a field that is not a
    /// number or an ascending range `a-b`, a CPU at or above `maxCPU`, the stride form
    /// `a-b:n/m` (which sysfs never prints), or text longer than `textLimit`.
    public static func parse(_ text: String) -> [Int]? {
        guard text.utf8.count <= textLimit else { return nil }
        let trimmed = text.trimmingWhitespace()
        if trimmed.isEmpty { return [] }
        var present = [Bool](repeating: false, count: maxCPU)
        for field in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = field.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let first = bounds.first, let low = number(first) else { return nil }
            var high = low
            if bounds.count == 2 {
                guard let upper = number(bounds[1]), upper >= low else { return nil }
                high = upper
            }
            for cpu in low...high { present[cpu] = true }
        }
        return present.indices.filter { present[$0] }
    }

    /// `cpus` in the kernel's own form (`0-3,8`), the inverse of `parse` for a sorted list.
    public static func format(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        while index < cpus.count {
            var end = index
            while end + 1 < cpus.count, cpus[end + 1] == cpus[end] &+ 1 { end += 1 }
            parts.append(end == index ? "\(cpus[index])" : "\(cpus[index])-\(cpus[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    /// A CPU number: decimal digits only, below `maxCPU`.
    static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(text), value < maxCPU
        else { return nil }
        return value
    }
}
