"""The kiosk device agent: a small aiohttp program on each kiosk.

It enrols once, holds a WebSocket to the server (heartbeats, numbered and
acknowledged messages both ways, jittered reconnect), drives the peripherals
(camera, printer, ID-card reader) behind small interfaces, and serves the
kiosk page on localhost: it proxies /kiosk/ to the server with the device's
credential, keeps guidance pages for offline use, pushes peripheral events to
the page and takes print jobs from it.
"""

VERSION = "0.1.0"
