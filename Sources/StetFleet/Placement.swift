/// Where each replica of each service runs in a fleet (docs/architecture.md, "A fleet on etcd"):
/// the leader's pure decision, `(services, live nodes, current assignments) -> assignments`.
///
/// Stable first: an assignment to a live node that still matches the service's selector stays
/// where it is, so a node that dies moves its own replicas and nothing else. A replica to place
/// goes to the matching node with the fewest replicas of that service (and, with `spread`, in the
/// least used value of that label), then the fewest replicas overall, then by name, so the same
/// input gives the same placement.
public struct Placement: Sendable {
    public struct Service: Sendable, Equatable {
        public let name: String
        public let replicas: Int
        /// Labels a node must carry (all of them).
        public let selector: [String: String]
        /// A label whose values the replicas spread across (`zone`), besides spreading across nodes.
        public let spread: String?
        /// Nodes that may not run it (drained for a drill).
        public var excluded: Set<String> = []

        public init(name: String, replicas: Int, selector: [String: String] = [:], spread: String? = nil, excluded: Set<String> = []) {
            self.name = name
            self.replicas = replicas
            self.selector = selector
            self.spread = spread
            self.excluded = excluded
        }

        func allows(_ node: Node) -> Bool { !excluded.contains(node.name) && node.matches(selector) }
    }

    public struct Node: Sendable, Equatable {
        public let name: String
        public let labels: [String: String]

        public init(name: String, labels: [String: String] = [:]) {
            self.name = name
            self.labels = labels
        }

        func matches(_ selector: [String: String]) -> Bool { selector.allSatisfy { labels[$0.key] == $0.value } }
    }

    /// A replica of a service.
    public struct Slot: Hashable, Sendable, Comparable {
        public let service: String
        public let index: Int

        public init(service: String, index: Int) {
            self.service = service
            self.index = index
        }

        public static func < (a: Slot, b: Slot) -> Bool { (a.service, a.index) < (b.service, b.index) }
    }

    /// Where each replica goes, and the replicas no live node matches (left unplaced, said).
    public struct Result: Sendable, Equatable {
        public var assignments: [Slot: String]
        public var unplaced: [Slot]

        public init(assignments: [Slot: String] = [:], unplaced: [Slot] = []) {
            self.assignments = assignments
            self.unplaced = unplaced
        }
    }

    public init() {}

    public func place(_ services: [Service], on nodes: [Node], current: [Slot: String]) -> Result {
        let nodesByName = Dictionary(nodes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let sortedNodes = nodes.sorted { $0.name < $1.name }
        var total: [String: Int] = [:]
        var result = Result(assignments: [:], unplaced: [])
        // Kept first, for every service, so the load counts of what stays are known before
        // anything new is placed.
        var kept: [String: [Int: String]] = [:]
        for service in services {
            for index in 0..<max(service.replicas, 0) {
                let slot = Slot(service: service.name, index: index)
                if let node = current[slot], let live = nodesByName[node], service.allows(live) {
                    kept[service.name, default: [:]][index] = node
                    total[node, default: 0] += 1
                }
            }
        }
        // Nodes by (load, name): the least loaded matching node is found from the front, without
        // looking at every node for every replica.
        var order = LoadOrder(nodes: sortedNodes.map(\.name), load: total)
        for service in services.sorted(by: { $0.name < $1.name }) {
            var mine: [String: Int] = [:]
            var perValue: [String: Int] = [:]
            for (index, node) in kept[service.name] ?? [:] {
                result.assignments[Slot(service: service.name, index: index)] = node
                mine[node, default: 0] += 1
                if let spread = service.spread, let value = nodesByName[node]?.labels[spread] { perValue[value, default: 0] += 1 }
            }
            for index in 0..<max(service.replicas, 0) where kept[service.name]?[index] == nil {
                let slot = Slot(service: service.name, index: index)
                // The best is the least (spread use, replicas of this service) and, among equals,
                // the first in load order. A node holding none of this service, with no spread
                // asked, is as good as any: stop at the first.
                var best: (key: (Int, Int), node: String)?
                for name in order.names {
                    guard let node = nodesByName[name], service.allows(node) else { continue }
                    let key = (service.spread.map { perValue[node.labels[$0] ?? "", default: 0] } ?? 0, mine[name, default: 0])
                    if best == nil || key < best!.key { best = (key, name) }
                    if service.spread == nil, key.1 == 0 { break }
                }
                guard let node = best?.node else {
                    result.unplaced.append(slot)
                    continue
                }
                result.assignments[slot] = node
                mine[node, default: 0] += 1
                order.add(1, to: node)
                if let spread = service.spread { perValue[nodesByName[node]?.labels[spread] ?? "", default: 0] += 1 }
            }
        }
        result.unplaced.sort()
        return result
    }
}

/// Node names ordered by (load, name), updated as replicas are placed.
struct LoadOrder {
    private(set) var names: [String]
    private var load: [String: Int]

    init(nodes: [String], load: [String: Int]) {
        self.load = load
        names = nodes.sorted { (load[$0, default: 0], $0) < (load[$1, default: 0], $1) }
    }

    mutating func add(_ amount: Int, to node: String) {
        let old = load[node, default: 0]
        if let index = position(of: node, load: old) { names.remove(at: index) }
        load[node] = old + amount
        names.insert(node, at: insertion(node, load: old + amount))
    }

    private func key(_ name: String) -> (Int, String) { (load[name, default: 0], name) }

    /// The first position whose key is not below `(load, node)`.
    private func insertion(_ node: String, load value: Int) -> Int {
        var low = 0, high = names.count
        while low < high {
            let middle = (low + high) / 2
            if key(names[middle]) < (value, node) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private func position(of node: String, load value: Int) -> Int? {
        let index = insertion(node, load: value)
        return index < names.count && names[index] == node ? index : nil
    }
}
