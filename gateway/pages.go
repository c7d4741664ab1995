package gateway

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/swarmgate/swarmgate/web"
)

func (g *Gateway) pageRoutes(e *echo.Echo) {
	static := web.Static()
	page := func(name string) echo.HandlerFunc {
		return func(c echo.Context) error {
			http.ServeFileFS(c.Response(), c.Request(), static, name)
			return nil
		}
	}
	e.GET("/", page("index.html"))
	e.GET("/watch/:ih", page("watch.html"))
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServer(http.FS(static)))))
}
