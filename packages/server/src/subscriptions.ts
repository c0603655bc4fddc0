import type { ChannelEvent, ClientId } from '@mls/core/interfaces'

export type Listener = (event: ChannelEvent) => void

export class Subscriptions {
  private readonly listeners = new Map<ClientId, Set<Listener>>()

  subscribe(clientId: ClientId, listener: Listener): () => void {
    let set = this.listeners.get(clientId)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(clientId, set)
    }
    const wrapped: Listener = (event) => listener(event)
    set.add(wrapped)
    return () => {
      const current = this.listeners.get(clientId)
      if (current === undefined) return
      current.delete(wrapped)
      if (current.size === 0) this.listeners.delete(clientId)
    }
  }

  has(clientId: ClientId): boolean {
    return this.listeners.has(clientId)
  }

  /** How many clients have a listener. */
  get size(): number {
    return this.listeners.size
  }

  /** The clients that have a listener. */
  clients(): IterableIterator<ClientId> {
    return this.listeners.keys()
  }

  /** Call every listener of `clientId` with its own event (`make` builds a fresh copy for each). */
  emit(clientId: ClientId, make: () => ChannelEvent): void {
    const set = this.listeners.get(clientId)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        listener(make())
      } catch {
        // a failing listener must not affect the service or other clients
      }
    }
  }
}
