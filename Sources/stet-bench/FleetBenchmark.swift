import Foundation
import StetFleet

/// `stet-bench fleet [SERVICES] [NODES]`: the leader's placement of SERVICES services (2
/// replicas each, default 10,000) on NODES nodes (default 1,000), in memory, and how many
/// assignments move when one node dies. Target: placement under 1 s; moved = the dead node's own.
/// (Host failover against a real etcd comes with the fleet's nodes.)
enum FleetBenchmark {
    static func run(_ arguments: [String]) throws {
        let serviceCount = arguments.first.flatMap(Int.init) ?? 10_000
        let nodeCount = arguments.dropFirst().first.flatMap(Int.init) ?? 1000
        let nodes = (0..<nodeCount).map { Placement.Node(name: "node-\($0)", labels: ["zone": "z\($0 % 3)"]) }
        let services = (0..<serviceCount).map { Placement.Service(name: "svc-\($0)", replicas: 2) }
        print("fleet placement, \(serviceCount) services × 2 replicas on \(nodeCount) nodes, in memory")
        print()
        Measure.row("figure", "Stet", "reference", "ratio / target")
        var first = Placement.Result(assignments: [:], unplaced: [])
        var times: [Double] = []
        for _ in 0..<3 { times.append(Measure.seconds { first = Placement().place(services, on: nodes, current: [:]) }) }
        let median = times.sorted()[1]
        Measure.row("place from nothing (median of 3)", String(format: "%.0f ms", median * 1000), "target 1 s", String(format: "%.2f of target", median))
        let dead = nodes[nodeCount / 2].name
        var second = first
        let again = Measure.seconds {
            second = Placement().place(services, on: nodes.filter { $0.name != dead }, current: first.assignments)
        }
        let held = first.assignments.values.filter { $0 == dead }.count
        let moved = first.assignments.filter { second.assignments[$0.key] != $0.value }.count
        Measure.row("place again after a node died", String(format: "%.0f ms", again * 1000), "target 1 s", String(format: "%.2f of target", again))
        Measure.row("assignments moved", "\(moved)", "\(held) on the dead node", moved == held ? "only its own" : "MORE THAN ITS OWN")
    }
}
