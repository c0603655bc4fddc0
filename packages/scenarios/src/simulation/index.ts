export { runSimulation, SimulationViolation, type SimulationOptions, type SimulationResult } from './simulator.js'
export { Random, SimulatedNetwork, faultyTransport, type NetworkFaults } from './network.js'
