/** The web chat's single page; `server` is the default WebSocket URL offered at sign-in. */
export function page(server: string): string {
  const attribute = server.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MLS web chat</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
</head>
<body data-server="${attribute}">
<header><h1>MLS web chat</h1><span id="whoami"></span></header>
<form id="signin-form" class="panel">
  <div id="signin">
    <h2>Sign in</h2>
    <p>Your identity (a signature key) is made in this browser and kept in IndexedDB; the first device to use a user id claims it.</p>
    <label>User <input id="user" required maxlength="128" autocomplete="off"></label>
    <label>Device <input id="device" required maxlength="128" value="web" autocomplete="off"></label>
    <label>Server <input id="server" required></label>
    <button id="signin-button">Sign in</button>
  </div>
</form>
<main id="app" hidden>
  <section class="panel" id="groups-panel">
    <h2>Groups</h2>
    <ul id="groups"></ul>
    <button id="new-group">New group</button>
    <h2>Safety number</h2>
    <form id="safety-form"><input id="safety-user" placeholder="user (you by default)"><button>Show</button></form>
    <p id="safety" data-testid="safety"></p>
  </section>
  <section class="panel" id="chat-panel">
    <h2 id="group-title"></h2>
    <ul id="messages"></ul>
    <form id="compose-form"><fieldset id="compose"><input id="text" placeholder="Message" autocomplete="off"><button id="send">Send</button></fieldset></form>
    <fieldset id="member-actions">
      <h3>Members</h3>
      <ul id="members"></ul>
      <form id="invite-form"><input id="invite" placeholder="user ids to invite"><button>Invite</button></form>
      <form id="remove-form"><input id="remove" placeholder="user or user/device to remove"><button>Remove</button></form>
      <button id="update">Update my leaf</button>
      <button id="leave" title="Propose your own removal; the next commit by a member removes you and this device forgets the group's history">Leave group</button>
    </fieldset>
    <h3>Notices</h3>
    <ul id="notices"></ul>
  </section>
  <section class="panel" id="inspector">
    <h2>Protocol inspector</h2>
    <p id="inspector-epoch" data-testid="inspector-epoch"></p>
    <h3>Ratchet tree</h3>
    <p class="legend"><span class="node leaf own">you</span> <span class="node leaf">member</span> <span class="node parent">parent key</span> <span class="node blank">∅ blank</span> <span class="node refreshed">refreshed by the last commit</span></p>
    <div id="tree"></div>
    <h3>Epoch authenticators</h3>
    <ul id="authenticators"></ul>
    <h3>Epoch timeline</h3>
    <ul id="timeline"></ul>
  </section>
</main>
<script type="module" src="/app.js"></script>
</body>
</html>
`
}

export const STYLE = `
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
header { display: flex; gap: 1em; align-items: baseline; padding: .5em 1em; background: #1d2330; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
main { display: grid; grid-template-columns: 16em 1fr 1.2fr; gap: .8em; padding: .8em; }
.panel { background: #fff; border-radius: 6px; padding: .8em; box-shadow: 0 1px 2px #0002; }
#signin-form { max-width: 30em; margin: 2em auto; }
#signin label { display: block; margin: .4em 0; }
h2 { font-size: 1.05em; margin: .2em 0 .5em; } h3 { font-size: .95em; margin: .8em 0 .3em; }
ul { list-style: none; padding: 0; margin: 0; }
#groups li button { width: 100%; text-align: left; margin: .1em 0; font-family: monospace; }
#groups li.current button { background: #dbe8ff; font-weight: bold; }
#messages { height: 16em; overflow-y: auto; border: 1px solid #ddd; padding: .4em; margin-bottom: .4em; }
#messages .seq { color: #889; font-family: monospace; }
fieldset { border: 0; padding: 0; margin: 0; }
#compose { display: flex; gap: .4em; } #compose input { flex: 1; }
#notices { font-size: .85em; max-height: 8em; overflow-y: auto; } #notices .error { color: #b00020; }
.tree-grid { display: grid; gap: .3em .15em; font-size: .75em; }
.node { display: inline-block; padding: .3em .2em; border-radius: 4px; text-align: center; border: 1px solid #99a; background: #eef; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.node.leaf { background: #e3f6e5; border-color: #4a8; }
.node.own { outline: 2px solid #2a62d8; }
.node.blank { background: #fafafa; color: #aaa; border-style: dashed; }
.node.parent { font-family: monospace; }
.node.refreshed { background: #ffe9a8; border-color: #d89b00; }
#authenticators li, #timeline li { font-family: monospace; font-size: .8em; margin: .15em 0; }
#authenticators .agrees { color: #18794e; } #authenticators .differs { color: #a15c00; }
.legend .node { font-size: .75em; }
`
