/// How a node holds its fleet lease, and the check that the numbers can hold it at all.
///
/// A node renews its lease every third of the TTL, each renewal bounded by `renewalTimeout`, and
/// a failed renewal is tried again at once. It fences a primary when only `fenceMargin` is left
/// of the lease it last proved. Settings are refused when one lost renewal and its retry could not
/// finish before that point: such a node would give up its primary, or stop acting, on a single
/// lost packet, and hold nothing for long (a Patroni with ttl 2 and retry_timeout 1 holds a
/// primary a fraction of the time for the same reason).
public struct LeaseSettings: Sendable, Equatable {
    /// Seconds, 2 to 3600 (etcd raises shorter leases to its own minimum).
    public var ttl: Int
    /// Seconds each renewal may take.
    public var renewalTimeout: Double
    /// Seconds before the lease could expire at which a primary is fenced.
    public var fenceMargin: Double

    /// What the fence needs at least: one pass of the primary keeper (50 ms) and a SIGKILL.
    public static let minimumFenceMargin = 0.2

    /// The defaults for `ttl`: a margin of a sixth of the TTL (at least 0.5 s), and a renewal
    /// timeout that leaves room for two renewals after the interval (at most 2 s).
    public init(ttl: Int) { self.init(ttl: ttl, renewalTimeout: nil, fenceMargin: nil) }

    /// Unset, the timeout is worked out from the margin in force (given or default).
    public init(ttl: Int, renewalTimeout: Double?, fenceMargin: Double?) {
        self.ttl = ttl
        let margin = fenceMargin ?? max(0.5, Double(ttl) / 6)
        self.fenceMargin = margin
        if let renewalTimeout {
            self.renewalTimeout = renewalTimeout
        } else {
            let room = (Double(ttl) - margin - Double(ttl) / 3) / 3
            self.renewalTimeout = room.isFinite ? max(0.1, min(2, (room * 10).rounded(.down) / 10)) : 0.1
        }
    }

    public var renewalInterval: Double { Double(ttl) / 3 }

    /// Why these settings cannot hold a lease or a primary, or nil.
    public var problem: String? {
        guard (2...3600).contains(ttl) else { return "a lease TTL of \(ttl) s is outside 2 to 3600 s" }
        guard renewalTimeout.isFinite, (0.05...60).contains(renewalTimeout) else {
            return "a renewal timeout of \(renewalTimeout) s is outside 0.05 to 60 s"
        }
        guard fenceMargin.isFinite, fenceMargin >= Self.minimumFenceMargin else {
            return "a fence margin of \(fenceMargin) s leaves no time to demote or stop a primary (at least \(Self.minimumFenceMargin) s)"
        }
        let fencePoint = Double(ttl) - fenceMargin
        guard fencePoint > renewalInterval else {
            return "a fence margin of \(fenceMargin) s with a TTL of \(ttl) s fences a primary before the first renewal is due "
                + "(every \(Self.seconds(renewalInterval)) s)"
        }
        let worst = renewalInterval + 2 * renewalTimeout
        guard worst < fencePoint else {
            return "with a TTL of \(ttl) s, a renewal every \(Self.seconds(renewalInterval)) s that may wait \(Self.seconds(renewalTimeout)) s: "
                + "one lost renewal and its retry end \(Self.seconds(worst)) s after the last good one, but a primary must be fenced "
                + "\(Self.seconds(fencePoint)) s after it (TTL − fence margin \(Self.seconds(fenceMargin)) s): the node would lose its "
                + "right to act on one lost packet. Raise --lease-ttl or lower --etcd-timeout"
        }
        return nil
    }

    static func seconds(_ value: Double) -> String {
        let text = String(format: "%.2f", value)
        return text.hasSuffix(".00") ? String(text.dropLast(3)) : text.hasSuffix("0") ? String(text.dropLast()) : text
    }
}
