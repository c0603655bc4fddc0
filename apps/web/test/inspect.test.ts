import { describe, expect, it } from 'vitest'
import { nodeLevel, refreshedNodes, type TreeNodeView } from '../src/browser/inspect.js'

const node = (nodeIndex: number, publicKey: string): TreeNodeView => ({
  nodeIndex,
  kind: publicKey === '' ? 'blank' : nodeIndex % 2 === 0 ? 'leaf' : 'parent',
  leafIndex: nodeIndex % 2 === 0 ? nodeIndex / 2 : undefined,
  clientId: undefined,
  publicKey
})

describe('inspector tree reading', () => {
  it('places nodes on their level of the array representation (RFC 9420 appendix C)', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 11, 15].map(nodeLevel)).toEqual([0, 1, 0, 2, 0, 1, 0, 3, 2, 4])
  })

  it('reports exactly the nodes whose key changed or that became occupied, never blanked ones', () => {
    const before = [node(0, 'a0'), node(1, ''), node(2, 'b0'), node(3, 'r0'), node(4, 'c0')]
    const after = [node(0, 'a0'), node(1, 'p1'), node(2, 'b1'), node(3, 'r1'), node(4, ''), node(5, ''), node(6, 'd0')]
    expect(refreshedNodes(before, after)).toEqual([1, 2, 3, 6])
    expect(refreshedNodes(after, after)).toEqual([])
  })
})
