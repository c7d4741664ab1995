// Share and Embed buttons, for the watch and live pages: copy a link, or the embed code, and
// show it in a box to copy by hand where the clipboard is refused.

async function copy (text) {
  try {
    await navigator.clipboard.writeText(text)
    return true
  } catch {
    // No clipboard API (insecure context, or denied): the old way.
    const ta = Object.assign(document.createElement('textarea'), { value: text })
    ta.setAttribute('readonly', '')
    ta.style.position = 'fixed'
    ta.style.opacity = '0'
    document.body.append(ta)
    ta.select()
    let ok = false
    try {
      ok = document.execCommand('copy')
    } catch {}
    ta.remove()
    return ok
  }
}

// setupShare wires the page's #share, #embed, #code, #codebox and #copied. links() returns
// { watch, iframe, element } as of the click (the file may change).
export function setupShare (links) {
  const $ = id => document.getElementById(id)
  const show = (text, note) => {
    $('code').value = text
    $('codebox').hidden = false
    copy(text).then(ok => {
      $('copied').textContent = ok ? `${note} copied` : 'Copy it from the box below'
      setTimeout(() => { $('copied').textContent = '' }, 3000)
    })
  }
  $('share').addEventListener('click', () => show(links().watch, 'Link'))
  $('embed').addEventListener('click', () => {
    const l = links()
    show(`${l.iframe}\n\n<!-- or -->\n${l.element}`, 'Embed code')
  })
}
