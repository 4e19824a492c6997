import StetFleet
import Testing

/// The leader's placement on fixed inputs: spreading, selectors, stability, and moving only what
/// a dead node held.
@Suite struct PlacementTests {
    typealias Slot = Placement.Slot
    let three = ["a", "b", "c"].map { Placement.Node(name: $0) }

    func counts(_ result: Placement.Result) -> [String: Int] {
        Dictionary(result.assignments.values.map { ($0, 1) }, uniquingKeysWith: +)
    }

    @Test func sixReplicasSpreadTwoTwoTwo() {
        let result = Placement().place([.init(name: "web", replicas: 6)], on: three, current: [:])
        #expect(counts(result) == ["a": 2, "b": 2, "c": 2])
        #expect(result.unplaced.isEmpty)
        // The same input, the same placement.
        #expect(Placement().place([.init(name: "web", replicas: 6)], on: three.reversed(), current: [:]) == result)
    }

    @Test func aDeadNodeMovesItsOwnReplicasOnly() {
        let first = Placement().place([.init(name: "web", replicas: 6), .init(name: "db", replicas: 2)], on: three, current: [:])
        let survivors = three.filter { $0.name != "b" }
        let second = Placement().place(
            [.init(name: "web", replicas: 6), .init(name: "db", replicas: 2)], on: survivors, current: first.assignments)
        for (slot, node) in first.assignments where node != "b" {
            #expect(second.assignments[slot] == node, "\(slot) moved from \(node)")
        }
        #expect(!second.assignments.values.contains("b"))
        #expect(second.assignments.count == 8)
        #expect(counts(second).values.allSatisfy { $0 == 4 })
    }

    @Test func selectorsAndZonesAreKept() {
        let nodes = [
            Placement.Node(name: "a1", labels: ["zone": "a", "disk": "ssd"]), Placement.Node(name: "a2", labels: ["zone": "a", "disk": "ssd"]),
            Placement.Node(name: "b1", labels: ["zone": "b", "disk": "ssd"]), Placement.Node(name: "c1", labels: ["zone": "c"]),
        ]
        let result = Placement().place(
            [.init(name: "db", replicas: 2, selector: ["disk": "ssd"], spread: "zone")], on: nodes, current: [:])
        let zones = Set(result.assignments.values.map { $0.prefix(1) })
        #expect(zones == ["a", "b"], "\(result)")
        // Nothing matches: unplaced, said; an assignment to a node that no longer matches moves.
        let none = Placement().place([.init(name: "gpu", replicas: 1, selector: ["gpu": "yes"])], on: nodes, current: [:])
        #expect(none.unplaced == [Slot(service: "gpu", index: 0)])
        let moved = Placement().place(
            [.init(name: "db", replicas: 1, selector: ["disk": "ssd"])], on: nodes, current: [Slot(service: "db", index: 0): "c1"])
        #expect(moved.assignments[Slot(service: "db", index: 0)] != "c1")
    }

    @Test func replicasBeyondTheCountAreDropped() {
        let first = Placement().place([.init(name: "web", replicas: 3)], on: three, current: [:])
        let fewer = Placement().place([.init(name: "web", replicas: 2)], on: three, current: first.assignments)
        #expect(fewer.assignments.count == 2)
        #expect(fewer.assignments[Slot(service: "web", index: 0)] == first.assignments[Slot(service: "web", index: 0)])
    }

    /// At the benchmark's scale: 10,000 services of 2 replicas on 1,000 nodes spread evenly, and
    /// a node's death moves exactly the replicas it held.
    @Test func atScaleOnlyTheDeadNodesReplicasMove() {
        let nodes = (0..<1000).map { Placement.Node(name: "n\($0)") }
        let services = (0..<10_000).map { Placement.Service(name: "s\($0)", replicas: 2) }
        let first = Placement().place(services, on: nodes, current: [:])
        #expect(first.assignments.count == 20_000)
        #expect(Set(counts(first).values) == [20])
        #expect(services.allSatisfy { first.assignments[Slot(service: $0.name, index: 0)] != first.assignments[Slot(service: $0.name, index: 1)] })
        let second = Placement().place(services, on: nodes.filter { $0.name != "n7" }, current: first.assignments)
        let moved = first.assignments.filter { second.assignments[$0.key] != $0.value }
        #expect(moved.count == 20 && moved.values.allSatisfy { $0 == "n7" })
    }
}
