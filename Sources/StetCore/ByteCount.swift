/// A number of bytes as people read it: `812 B`, `94.3 KiB`, `1.2 GiB` (binary units, one decimal).
public enum ByteCount {
    public static func text(_ bytes: Int) -> String {
        guard bytes >= 1024 else { return "\(max(bytes, 0)) B" }
        var value = Double(bytes)
        for unit in ["KiB", "MiB", "GiB", "TiB", "PiB"] {
            value /= 1024
            if value < 1024 || unit == "PiB" {
                let tenths = Int((value * 10).rounded())
                return "\(tenths / 10).\(tenths % 10) \(unit)"
            }
        }
        return "\(bytes) B"
    }
}
